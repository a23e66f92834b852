"""The stock import in this process, without Celery, the API or the broker: how many rows a second
`import_stock` merges into `product`, against `psql \\copy` of the same file into a bare table.

    python -m bench.import_cost --mb 60 [--batch 10000] [--again] [--ceiling]

`--again` imports the file a second time, so every row updates a product instead of adding one.
`--ceiling` also times the same merge done by PostgreSQL alone, in one psql session: the file
`\\copy`-ed into an unindexed temporary table, then one INSERT .. ON CONFLICT of all of it (no
Python, no batches, no checks): what no import that upserts into `product` can beat.
"""

import argparse
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import httpx

from bench.imports import psql_copy_s, stock_file
from fulfillment.config import WorkerSettings
from fulfillment.runner import Context
from fulfillment.stock_import import MERGE, import_stock
from orders.db import libpq_url, make_engine, make_sessionmaker
from orders.models import ImportJob
from orders.payments import SandboxGateway
from stack.processes import ROOT
from stack.services import fresh_database

DB_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/orders_bench"


def sql_only_merge_s(path: Path) -> float:
    """Stage the whole file with `\\copy` and merge it with the import's own statement, in one
    psql session, rolled back: the upsert's floor on this machine."""
    script = (  # rolled back: the import measured next finds the products as they were
        "BEGIN;\nCREATE TEMPORARY TABLE stock_import_row (line bigint, sku text, name text,"
        " unit_price integer, currency text, stock_on_hand integer);\n"
        f"\\copy stock_import_row (sku, name, unit_price, currency, stock_on_hand) FROM '{path}'"
        " WITH (FORMAT csv, HEADER true)\n"
        f"{MERGE.strip()};\nROLLBACK;\n"
    )
    psql = shutil.which("psql")
    if psql is None:
        raise SystemExit("psql is missing")
    started = time.perf_counter()
    subprocess.run(
        [psql, libpq_url(DB_URL), "-q", "-v", "ON_ERROR_STOP=1"],
        input=script,
        text=True,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


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
    for run in ("first", "again") if args.again else ("first",):
        path = spool / "cost.csv"
        rows = stock_file(path, args.mb)
        copy_s = psql_copy_s(DB_URL, path)
        # Before the import, which deletes the file when it ends.
        merge_s = sql_only_merge_s(path) if args.ceiling else None
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
        if merge_s is not None:
            print(
                f"{run}, PostgreSQL alone: \\copy to a temporary table + one INSERT .. ON CONFLICT"
                f" {merge_s:.2f} s = {rows / merge_s:,.0f} rows/s; ratio {copy_s / merge_s:.2f}"
            )


if __name__ == "__main__":
    main()
