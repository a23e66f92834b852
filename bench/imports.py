"""The bulk stock import in `make bench`: a generated stock CSV (500 MB, about 6 million rows; made
here, deleted after) uploaded to `POST /ops/imports` and imported by a worker, against `psql \\copy`
of the same file into a bare table in the same run; the API's memory while the file streams in;
and checkout's p99 while the import runs against its p99 just before."""

import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench.capacity import openloop
from bench.procs import cpu_spent, snapshot, tree
from bench.table import fmt
from orders.db import libpq_url
from stack.processes import ROOT, Stack
from stack.samples import STOCK_HEADER, stock_rows

CHUNK = 1024 * 1024


def stock_file(path: Path, megabytes: int, restock: int = 0) -> int:
    """About `megabytes` of stock rows (`stack.samples.stock_rows`); returns how many rows."""
    rows, size, target = 0, 0, megabytes * 1_000_000
    with path.open("w") as out:
        out.write(STOCK_HEADER)
        while size < target:
            block = stock_rows("BULK", rows + 1, rows + 10_001, restock)
            out.write(block)
            rows, size = rows + 10_000, size + len(block)
    return rows


def psql_copy_s(db_url: str, path: Path, keyed: bool = False) -> float:
    """`\\copy` of the file into a bare table (no key, no constraint): the floor of getting the
    rows into PostgreSQL at all. `keyed`: into an empty table with product's key, checks and
    defaults instead, no merge: what no import into `product` can pass."""
    url = libpq_url(db_url)
    shape = (
        "(LIKE product INCLUDING ALL)"
        if keyed
        else "(sku text, name text, unit_price integer, currency text, stock_on_hand integer)"
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_bare_stock")
        conn.execute(f"CREATE TABLE bench_bare_stock {shape}")
        if keyed:
            conn.execute(
                "ALTER TABLE bench_bare_stock ALTER stock_reserved SET DEFAULT 0,"
                " ALTER updated_at SET DEFAULT now()"
            )
    columns = "(sku, name, unit_price, currency, stock_on_hand)"
    seconds = psql_s(
        db_url, f"\\copy bench_bare_stock {columns} FROM '{path}' WITH (FORMAT csv, HEADER true)\n"
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE bench_bare_stock")
    return seconds


def psql_s(db_url: str, script: str) -> float:
    """Seconds for psql to run `script` (its meta-commands, `\\copy`, included), stopping at the
    first error."""
    psql = shutil.which("psql")
    if psql is None:
        raise SystemExit("psql is missing: the bench compares the import with psql's \\copy")
    started = time.perf_counter()
    subprocess.run(
        [psql, libpq_url(db_url), "-q", "-v", "ON_ERROR_STOP=1"],
        input=script,
        text=True,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


class PeakRss(threading.Thread):
    """The API's resident memory (every process of its tree), sampled every 50 ms."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root, self.stopping, self.peak_kb = root, threading.Event(), 0

    def kb(self) -> int:
        procs = snapshot()
        return sum(procs[pid].rss_kb for pid in tree(self.root, procs))

    def run(self) -> None:
        while not self.stopping.wait(0.05):
            self.peak_kb = max(self.peak_kb, self.kb())


def upload(api: str, path: Path) -> tuple[dict[str, Any], float, float]:
    """Streams the file; returns the job, the upload's seconds and the seconds from the last byte
    sent to the 202."""
    sent_last = 0.0

    def body() -> Iterator[bytes]:
        nonlocal sent_last
        with path.open("rb") as file:
            while chunk := file.read(CHUNK):
                yield chunk
        sent_last = time.perf_counter()

    headers = {
        "X-API-Key": "bench",
        "Content-Type": "text/csv",
        "Idempotency-Key": str(uuid.uuid4()),
    }
    started = time.perf_counter()
    response = httpx.post(f"{api}/ops/imports", content=body(), headers=headers, timeout=600)
    answered = time.perf_counter()
    response.raise_for_status()
    return response.json(), answered - started, answered - sent_last


def job_of(db_url: str, job_id: str) -> dict[str, Any]:
    with psycopg.connect(libpq_url(db_url)) as conn:
        row = conn.execute(
            "SELECT status, rows_done, rows_failed,"
            " extract(epoch FROM finished_at - started_at) FROM import_job WHERE id = %s",
            (job_id,),
        ).fetchone()
    assert row is not None
    status, rows, failed, seconds = row
    seconds = None if seconds is None else float(seconds)
    return {"status": status, "rows": rows, "failed": failed, "seconds": seconds}


def imports_phase(
    stack: Stack, api: str, db_url: str, roots: dict[str, int], megabytes: int, seconds: int
) -> dict[str, Any]:
    """Needs the relay running; starts and stops an importer worker of its own."""
    path = ROOT / ".bench" / "stock.csv"
    try:
        rows = stock_file(path, megabytes)
        size = path.stat().st_size
        copy_s = psql_copy_s(db_url, path)
        keyed_s = psql_copy_s(db_url, path, keyed=True)
        without = openloop(f"{api}/orders", 50, seconds, roots)

        importer = stack.worker("importer", queues="imports", concurrency=1).wait_ready()
        peak = PeakRss(roots["api"])
        before_kb = peak.kb()
        peak.start()
        job, upload_s, to_202_s = upload(api, path)
        peak.stopping.set()
        peak.join()
        with cpu_spent(roots | {"importer": importer.pid}) as spent:
            during = openloop(f"{api}/orders", 50, seconds, roots)
            status_after_checkouts = job_of(db_url, job["id"])["status"]
            deadline = time.monotonic() + 1_800
            while (done := job_of(db_url, job["id"]))["status"] not in ("done", "failed"):
                assert time.monotonic() < deadline, "the import did not finish in 30 minutes"
                time.sleep(0.5)
        stack.stop({"importer"})
    finally:
        path.unlink(missing_ok=True)
    import_rows_per_s = done["rows"] / done["seconds"] if done["seconds"] else None
    return {
        "file_mb": round(size / 1e6, 1),
        "rows": rows,
        "upload_s": round(upload_s, 2),
        "last_byte_to_202_ms": round(to_202_s * 1000, 1),
        "api_rss_before_mb": round(before_kb / 1024, 1),
        "api_rss_growth_mb": round((peak.peak_kb - before_kb) / 1024, 1),
        "import": done,
        "import_rows_per_s": round(import_rows_per_s) if import_rows_per_s else None,
        "psql_copy_s": round(copy_s, 2),
        "psql_copy_rows_per_s": round(rows / copy_s),
        "keyed_copy_s": round(keyed_s, 2),
        "import_vs_copy": round(import_rows_per_s * copy_s / rows, 3)
        if import_rows_per_s
        else None,
        "import_cpu_s": {name: round(s, 1) for name, s in spent.items()},
        "checkout_without": without,
        "checkout_during": during,
        "import_still_running_after_checkouts": status_after_checkouts == "running",
    }


def met(ok: bool) -> str:
    return "met" if ok else "not met"


def print_imports(r: dict[str, Any]) -> None:
    cpu = r["import_cpu_s"]
    print(
        f"\nstock import: {r['file_mb']} MB CSV, {r['rows']:,} rows, uploaded in {r['upload_s']} s;"
        f" import {r['import']['status']} in {r['import']['seconds']:.1f} s"
        f" ({r['import']['failed']} rows skipped); importer CPU {cpu.get('importer', 0)} s,"
        f" PostgreSQL {cpu.get('postgres', 0)} s (checkouts included)"
    )
    growth, to_202 = r["api_rss_growth_mb"], r["last_byte_to_202_ms"]
    ratio = r["import_vs_copy"]
    without, during = r["checkout_without"]["p99_ms"], r["checkout_during"]["p99_ms"]
    rows = [
        ("API RSS growth during the upload", f"{growth} MB", "<= 50 MB", growth <= 50),
        ("last byte -> 202", f"{to_202} ms", "<= 500 ms", to_202 <= 500),
        (
            f"import {r['import_rows_per_s']:,} rows/s / psql \\copy {r['psql_copy_rows_per_s']:,}",
            f"{100 * ratio:.0f}%" if ratio else "-",
            ">= 50%",
            bool(ratio and ratio >= 0.5),
        ),
        (
            "psql \\copy into a table with product's key, no merge / bare",
            f"{100 * r['psql_copy_s'] / r['keyed_copy_s']:.0f}%",
            "(shown)",
            None,
        ),
        (
            "checkout p99 at 50/s, import running / not",
            f"{fmt(during).strip()} / {fmt(without).strip()} ms",
            "(shown)",
            None,
        ),
    ]
    for label, value, target, ok in rows:
        verdict = "" if ok is None else f"  ({met(ok)})"
        print(f"  {label:<58} {value:>16}   target {target}{verdict}")
    if not r["import_still_running_after_checkouts"]:
        print("  (the import ended before the checkouts did: part of them ran without it)")
