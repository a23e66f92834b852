"""A stock import under faults: the worker killed mid-import resumes after the last committed batch
and ends with the right counts (no batch applied or reported twice); a running import cancelled
stops between batches; a 200 MB upload through the real server never holds the file in memory."""

import asyncio
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from orders.messages import Queue
from stack.processes import Stack, free_port
from tests.helpers import OPS, count, eventually

pytestmark = [pytest.mark.fault, pytest.mark.slow]

HEADER = b"sku,name,unit_price,currency,stock_on_hand\n"
ROWS = 60_000
BAD_EVERY = 1_000  # rows 1000, 2000, ...: a price in major units


def stock_file(rows: int) -> bytes:
    lines = [HEADER]
    for n in range(1, rows + 1):
        price = "12.50" if n % BAD_EVERY == 0 else str(100 + n % 900)
        lines.append(f"IMP-{n:07d},Imported product {n},{price},EUR,{n % 50}\n".encode())
    return b"".join(lines)


def job_row(db, job_id: str) -> tuple[str, int, int, int]:
    row: tuple[str, int, int, int] | None = db.execute(
        "SELECT status, bytes_done, rows_done, rows_failed FROM import_job WHERE id = %s",
        (job_id,),
    ).fetchone()
    assert row is not None
    return row


@pytest.fixture
def stack(processes: Stack, tmp_path: Path) -> Iterator[tuple[Stack, httpx.Client]]:
    """The API as a real server, a relay; the import worker is the test's to start."""
    spool = tmp_path / "spool"
    processes.env |= {
        "IMPORT_SPOOL_DIR": str(spool),
        "IMPORT_BATCH_ROWS": "250",
        "IMPORT_SLICE_S": "2",
        "OPS_API_KEY": OPS["X-API-Key"],
        "ENVIRONMENT": "test",
    }
    port = free_port()
    processes.api(port, "orders.main:app", "--no-access-log")
    processes.relay()
    processes.ready()
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        yield processes, client


def upload(client: httpx.Client, body: bytes | Iterator[bytes]) -> dict[str, Any]:
    headers = OPS | {"Content-Type": "text/csv", "Idempotency-Key": str(uuid.uuid4())}
    response = client.post("/ops/imports", content=body, headers=headers)
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


async def test_sigkill_mid_import_resumes_after_the_last_committed_batch(db, stack):
    processes, client = stack
    body = stock_file(ROWS)
    worker = processes.worker("importer", queues=Queue.IMPORTS, concurrency=1)
    worker.wait_ready()
    job = upload(client, body)

    await eventually(lambda: job_row(db, job["id"])[2] >= 5_000, what="5,000 rows imported")
    worker.kill(signal.SIGKILL)
    status, bytes_done, rows_done, _ = job_row(db, job["id"])
    assert status == "running"
    assert rows_done < ROWS
    await asyncio.sleep(1)
    assert job_row(db, job["id"])[1] == bytes_done  # nothing moves while no worker runs

    processes.worker("importer-restarted", queues=Queue.IMPORTS, concurrency=1).wait_ready()
    await eventually(lambda: job_row(db, job["id"])[0] == "done", timeout_s=120, what="the import")

    assert job_row(db, job["id"]) == ("done", len(body), ROWS, ROWS // BAD_EVERY)
    assert count(db, f"import_row_error WHERE job_id = '{job['id']}'") == ROWS // BAD_EVERY
    lines = [r[0] for r in db.execute("SELECT line FROM import_row_error ORDER BY line")]
    assert lines == [n + 1 for n in range(BAD_EVERY, ROWS + 1, BAD_EVERY)]  # the header is line 1
    assert count(db, "product WHERE sku LIKE 'IMP-%'") == ROWS - ROWS // BAD_EVERY
    assert db.execute("SELECT stock_on_hand FROM product WHERE sku = 'IMP-0000049'").fetchone() == (
        49,
    )


async def test_a_running_import_stops_between_batches_when_cancelled(db, stack):
    processes, client = stack
    processes.worker("importer", queues=Queue.IMPORTS, concurrency=1).wait_ready()
    job = upload(client, stock_file(ROWS))
    await eventually(lambda: job_row(db, job["id"])[2] >= 1_000, what="a few batches imported")

    cancelled = client.post(f"/ops/imports/{job['id']}/cancel", headers=OPS)
    assert cancelled.status_code == 202
    await eventually(lambda: job_row(db, job["id"])[0] == "cancelled", what="the cancel")
    _, _, rows_done, _ = job_row(db, job["id"])
    assert rows_done < ROWS
    assert count(db, "product WHERE sku LIKE 'IMP-%'") <= rows_done  # nothing after the stop
    await asyncio.sleep(1)
    assert job_row(db, job["id"])[2] == rows_done


def vm_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


async def test_a_200_mb_upload_streams_to_disk_without_growing_the_api(db, stack):
    processes, client = stack
    api = processes.named("api")
    chunk = b"".join(f"BIG-{n:06d},Streamed product,100,EUR,5\n".encode() for n in range(25_000))
    chunks = 200 * 1024 * 1024 // len(chunk)

    def body() -> Iterator[bytes]:
        yield HEADER
        for _ in range(chunks):
            yield chunk

    peak_before = vm_kb(api.pid, "VmHWM")
    job = upload(client, body())
    growth_mb = (vm_kb(api.pid, "VmHWM") - peak_before) / 1024

    assert job["bytes_total"] == len(HEADER) + chunks * len(chunk)
    assert job["bytes_total"] > 200_000_000
    assert growth_mb < 50, f"the API's peak RSS grew {growth_mb:.0f} MB during a 200 MB upload"
    cancel = client.post(f"/ops/imports/{job['id']}/cancel", headers=OPS)
    assert cancel.json()["status"] == "cancelled"  # no worker: it was still queued
