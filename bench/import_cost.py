"""The stock import in this process, without Celery, the API or the broker: how many rows a second
`import_stock` merges into `product`, against `psql \\copy` of the same file into a bare table.

    python -m bench.import_cost --mb 60 [--batch 10000] [--again] [--ceiling]

The first file adds every product. `--again` then imports it a second time (every row as its
product already stands: nothing to write) and a third time with every stock level changed (every
row updates its product). `--ceiling` also times, in one psql session and rolled back, the same
merge done by PostgreSQL alone (the file `\\copy`-ed into an unindexed temporary table, then the
import's own statements on all of it: no Python, no batches), and for the first file a `\\copy`
straight into a table shaped like `product` (its key and checks, no merge at all): what no import
into `product` can beat.
"""

import argparse
import time
import uuid
from pathlib import Path

import httpx

from bench.imports import psql_copy_s, psql_s, stock_file
from fulfillment.config import WorkerSettings
from fulfillment.runner import Context
from fulfillment.stock_import import import_stock
from fulfillment.stock_merge import MERGE, STAGE
from orders.db import make_engine, make_sessionmaker
from orders.models import ImportJob
from orders.payments import SandboxGateway
from stack.processes import ROOT
from stack.services import fresh_database

DB_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/orders_bench"
RUNS = {"new": 0, "unchanged": 0, "changed": 1}  # each run's `restock`


def sql_only_merge_s(path: Path) -> float:
    """Stage the whole file with `\\copy` and merge it with the import's own statements."""
    columns = "sku, name, unit_price, currency, stock_on_hand"
    return psql_s(
        DB_URL,
        f"BEGIN;\n{STAGE.strip()};\n"  # its rows go at COMMIT; this rolls back
        f"\\copy stock_import_row ({columns}) FROM '{path}' WITH (FORMAT csv, HEADER true)\n"
        f"{MERGE.strip()};\nROLLBACK;\n",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=60)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--again", action="store_true")
    parser.add_argument("--ceiling", action="store_true")
    args = parser.parse_args()
    fresh_database(DB_URL)
    spool = ROOT / ".bench" / "spool"
    spool.mkdir(parents=True, exist_ok=True)
    settings = WorkerSettings(
        database_url=DB_URL,
        import_spool_dir=str(spool),
        import_slice_s=3_600,
        import_batch_rows=args.batch,
    )
    sessions = make_sessionmaker(make_engine(settings, "import-cost"))
    ctx = Context(sessions, SandboxGateway(), settings, httpx.Client())
    for run, restock in list(RUNS.items()) if args.again else [("new", 0)]:
        path = spool / "cost.csv"
        rows = stock_file(path, args.mb, restock)
        copy_s = psql_copy_s(DB_URL, path)
        # Before the import, which deletes the file when it ends.
        merge_s = sql_only_merge_s(path) if args.ceiling else None
        keyed_s = psql_copy_s(DB_URL, path, keyed=True) if args.ceiling and run == "new" else None
        with sessions() as session:
            job = ImportJob(
                idempotency_key=str(uuid.uuid4()),
                sha256=run,
                spool_name=path.name,
                bytes_total=path.stat().st_size,
            )
            session.add(job)
            session.commit()
            job_id = job.id
        started, cpu = time.perf_counter(), time.process_time()
        outcome = import_stock(ctx, job_id)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        print(
            f"{run}: {rows:,} rows, import {outcome} in {seconds:.2f} s = {rows / seconds:,.0f}"
            f" rows/s (this process's CPU {cpu:.2f} s); psql \\copy {copy_s:.2f} s ="
            f" {rows / copy_s:,.0f} rows/s; ratio {copy_s / seconds:.2f}"
        )
        for what, took in [
            ("PostgreSQL alone: \\copy to a temporary table + the import's statements", merge_s),
            ("\\copy into a table with product's key and checks, no merge", keyed_s),
        ]:
            if took is not None:
                print(
                    f"{run}, {what} {took:.2f} s = {rows / took:,.0f} rows/s;"
                    f" ratio {copy_s / took:.2f}"
                )


if __name__ == "__main__":
    main()
