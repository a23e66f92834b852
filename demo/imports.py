"""The demo's bulk stock import, as a warehouse system would send it: a generated catalog CSV of a
few MB, gzipped, uploaded to `POST /ops/imports` (202 at once), its progress followed on
`GET /ops/imports/{id}`, then the rows it skipped read from `errors.csv`."""

import gzip
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from stack.samples import STOCK_HEADER, stock_rows

# Three rows the import must skip, and say why: a price in major units, a field short, and stock
# below what the demo's orders hold of the mug (they reserved some; the file says none is left).
BAD_ROWS = (
    "WH-BAD-PRICE,Price with a decimal point,12.50,EUR,10\n",
    "WH-SHORT,A row a field short,900,EUR\n",
    "MUG-001,Enamel camp mug,1450,EUR,0\n",
)


def stock_file(rows: int, folder: Path) -> Path:
    """`rows` warehouse products (about 60 bytes each), the bad rows spread among them."""
    path = folder / "stock.csv"
    every = rows // (len(BAD_ROWS) + 1)
    with path.open("w") as out:
        out.write(STOCK_HEADER)
        for i, bad in enumerate(BAD_ROWS):
            out.write(stock_rows("WH", 1 + i * every, 1 + (i + 1) * every) + bad)
        out.write(stock_rows("WH", 1 + len(BAD_ROWS) * every, rows + 1))
    return path


def import_stock(
    api: str, ops: dict[str, str], folder: Path, rows: int, timeout_s: float
) -> dict[str, Any]:
    path = stock_file(rows, folder)
    body = gzip.compress(path.read_bytes(), compresslevel=6)
    headers = ops | {
        "Content-Type": "text/csv",
        "Content-Encoding": "gzip",
        "Idempotency-Key": str(uuid.uuid4()),
    }
    started = time.monotonic()
    response = httpx.post(f"{api}/ops/imports", content=body, headers=headers, timeout=60)
    response.raise_for_status()
    job = response.json()
    accepted_s = time.monotonic() - started
    size_mb = path.stat().st_size / 1e6
    columns = (
        TextColumn("stock import"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rows]:>9,} rows  {task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as progress:
        bar = progress.add_task("import", total=job["bytes_total"], rows=0, rate="")
        deadline = time.monotonic() + timeout_s
        while job["status"] not in ("done", "cancelled", "failed") and time.monotonic() < deadline:
            time.sleep(0.2)
            job = httpx.get(f"{api}{job['status_url']}", headers=ops).json()
            rate = f"{job['rows_per_s']:,.0f} rows/s" if job["rows_per_s"] else ""
            progress.update(bar, completed=job["bytes_done"], rows=job["rows_done"], rate=rate)
    errors = httpx.get(f"{api}{job['errors_url']}", headers=ops).text.splitlines()[1:]
    return {
        "status": job["status"],
        "file_mb": round(size_mb, 1),
        "upload_mb": round(len(body) / 1e6, 2),
        "accepted_s": round(accepted_s, 2),
        "rows": job["rows_done"],
        "imported": job["rows_imported"],
        "skipped": job["rows_failed"],
        "rows_per_s": job["rows_per_s"],
        "errors": errors,
    }
