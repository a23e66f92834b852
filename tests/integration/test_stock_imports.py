"""Bulk stock imports: the upload refused or taken whole (nothing kept when refused), the same file
or key answering the same job, and the import on a real worker: rows merged, skipped rows reported
with their lines, stock below what is reserved refused, `catalog.imported` sent, cancel."""

import asyncio
import base64
import dataclasses
import gzip
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from fulfillment.stock_import import import_stock
from orders import stock_import
from orders.api.config import ApiSettings
from orders.messages import Queue
from stack.processes import Stack
from tests.helpers import OPS, assert_problem, count, eventually, running_app

HEADER = "sku,name,unit_price,currency,stock_on_hand\n"
ENDED = ("done", "cancelled", "failed")


def csv_upload(body: bytes, key: str | None = None, **headers: str) -> dict[str, Any]:
    return {
        "content": body,
        "headers": OPS
        | {"Content-Type": "text/csv", "Idempotency-Key": key or str(uuid.uuid4())}
        | headers,
    }


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture
async def ops(
    db, test_settings: Callable[..., ApiSettings], spool: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """The API in process, its spool folder the test's own, taking files up to 256 KiB."""
    settings = test_settings(import_spool_dir=str(spool), import_max_bytes=256 * 1024)
    async with running_app(settings) as client:
        yield client


@pytest.fixture
def importer(processes: Stack, spool: Path, receiver) -> Stack:
    """A worker on the imports and webhooks queues, small batches, and a relay."""
    processes.env |= {"IMPORT_SPOOL_DIR": str(spool), "IMPORT_BATCH_ROWS": "3"}
    processes.worker(queues=f"{Queue.IMPORTS},{Queue.WEBHOOKS}")
    processes.relay()
    return processes.ready()


def spooled(spool: Path) -> list[str]:
    return sorted(p.name for p in spool.iterdir()) if spool.exists() else []


async def job_of(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    response = await client.get(f"/ops/imports/{job_id}", headers=OPS)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def finished(client: httpx.AsyncClient, job_id: str, timeout_s: float = 60) -> dict[str, Any]:
    """The job once it has ended, within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while (job := await job_of(client, job_id))["status"] not in ENDED:
        assert time.monotonic() < deadline, f"import {job_id} still {job['status']}"
        await asyncio.sleep(0.1)
    return job


STOCK_FILE = (
    (
        HEADER + "MUG-001,Enamel camp mug (2027),1600,EUR,450\n"  # line 2: updated
        "NB-A5,Dot-grid notebook A5,1200,EUR,3\n"  # line 3: below the 5 reserved
        "\n"
        '"NEW-1","Tote bag, organic cotton",1800,EUR,40\n'  # line 5: new
        "NEW-2,Sticker,12.50,EUR,40\n"  # line 6: a price in major units
        "NEW-3,Pin,300,EUR\n"  # line 7: a field short
        "NEW-4,Lanyard,500,EUR,25\n"  # line 8: new
    ).encode()
)


async def test_a_stock_file_is_imported_by_a_worker_and_its_skipped_rows_reported(
    ops, db, importer, spool, receiver
):
    db.execute("UPDATE product SET stock_reserved = 5 WHERE sku = 'NB-A5'")
    endpoint = await ops.post(
        "/ops/webhook-endpoints",
        json={"url": receiver.script("catalog"), "event_types": ["catalog.imported"]},
        headers=OPS,
    )
    assert endpoint.status_code == 201, endpoint.text

    response = await ops.post("/ops/imports", **csv_upload(STOCK_FILE))
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/ops/imports/{job['id']}"
    assert (job["status"], job["bytes_total"], job["replayed"]) == (
        "queued",
        len(STOCK_FILE),
        False,
    )

    done = await finished(ops, job["id"])
    assert done["status"] == "done"
    assert (done["rows_done"], done["rows_imported"], done["rows_failed"]) == (6, 3, 3)
    assert (done["bytes_done"], done["percent"]) == (len(STOCK_FILE), 100.0)
    products = db.execute(
        "SELECT sku, name, unit_price, stock_on_hand, stock_reserved FROM product"
        " WHERE sku IN ('MUG-001', 'NB-A5', 'NEW-1', 'NEW-2', 'NEW-3', 'NEW-4') ORDER BY sku"
    ).fetchall()
    assert products == [
        ("MUG-001", "Enamel camp mug (2027)", 1600, 450, 0),
        ("NB-A5", "Dot-grid notebook A5", 1200, 1000, 5),  # unchanged
        ("NEW-1", "Tote bag, organic cotton", 1800, 40, 0),
        ("NEW-4", "Lanyard", 500, 25, 0),
    ]

    errors = await ops.get(f"/ops/imports/{job['id']}/errors.csv", headers=OPS)
    assert errors.status_code == 200
    assert errors.headers["content-type"].startswith("text/csv")
    assert errors.text.splitlines() == [
        "line,sku,reason",
        "3,NB-A5,stock_on_hand 3 is below the 5 units reserved",
        "6,NEW-2,unit_price: whole minor units from 0 to 2147483647",
        '7,NEW-3,"expected 5 fields, found 4"',
    ]
    assert spooled(spool) == []  # the file goes when the import ends

    await eventually(lambda: len(receiver.received("catalog")) == 1, what="catalog.imported")
    message = receiver.received("catalog")[0]
    payload = json.loads(base64.b64decode(message["body_b64"]))
    assert payload["type"] == "catalog.imported"
    assert payload["data"] == {
        "import_id": job["id"],
        "sha256": hashlib.sha256(STOCK_FILE).hexdigest(),
        "rows": 6,
        "imported": 3,
        "skipped": 3,
    }


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"sku,name,price,currency,stock_on_hand\nA,B,1,EUR,1\n", "lacks unit_price"),
        (HEADER.strip().encode() + b",colour\nA,B,1,EUR,1,red\n", "does not read (colour)"),
        (b"", "The file is empty"),
        (b"x" * 70_000, "No header line"),
    ],
)
async def test_a_file_without_this_imports_header_is_refused_and_nothing_kept(
    ops, db, spool, body, detail
):
    response = await ops.post("/ops/imports", **csv_upload(body))
    assert detail in assert_problem(response, 422)["detail"]
    assert count(db, "import_job") == 0
    assert count(db, "outbox") == 0
    assert spooled(spool) == []


async def test_a_file_over_the_limit_is_refused_with_413_whether_announced_streamed_or_gzipped(
    ops, db, spool
):
    big = (HEADER + "MUG-001,Mug,100,EUR,1\n" * 12_000).encode()  # 288 KB against 256 KiB
    announced = await ops.post("/ops/imports", **csv_upload(big))
    assert_problem(announced, 413)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 8_192):
            yield big[start : start + 8_192]

    streamed = csv_upload(b"")
    del streamed["content"]
    streamed_response = await ops.post(
        "/ops/imports", content=chunks(), headers=streamed["headers"]
    )
    assert_problem(streamed_response, 413)

    bomb = gzip.compress(HEADER.encode() + b"0" * 10_000_000)  # 10 MB inflated from ~10 KB
    assert len(bomb) < 256 * 1024
    inflated = await ops.post("/ops/imports", **csv_upload(bomb, **{"Content-Encoding": "gzip"}))
    assert_problem(inflated, 413)
    assert count(db, "import_job") == 0
    assert spooled(spool) == []


async def test_media_type_and_encoding_are_checked(ops, db, spool):
    as_json = csv_upload(STOCK_FILE, **{"Content-Type": "application/json"})
    assert_problem(await ops.post("/ops/imports", **as_json), 415)
    as_brotli = csv_upload(STOCK_FILE, **{"Content-Encoding": "br"})
    assert_problem(await ops.post("/ops/imports", **as_brotli), 415)
    not_gzip = csv_upload(STOCK_FILE, **{"Content-Encoding": "gzip"})
    assert (
        "not valid gzip"
        in assert_problem(await ops.post("/ops/imports", **not_gzip), 400)["detail"]
    )
    cut_short = csv_upload(gzip.compress(STOCK_FILE)[:-20], **{"Content-Encoding": "gzip"})
    assert_problem(await ops.post("/ops/imports", **cut_short), 400)
    without_key = csv_upload(STOCK_FILE)
    del without_key["headers"]["Idempotency-Key"]
    assert_problem(await ops.post("/ops/imports", **without_key), 400)
    no_ops_key = csv_upload(STOCK_FILE)
    del no_ops_key["headers"]["X-API-Key"]
    assert_problem(await ops.post("/ops/imports", **no_ops_key), 401)
    assert count(db, "import_job") == 0
    assert spooled(spool) == []


async def test_the_same_key_or_the_same_file_answers_the_first_job(ops, db, spool):
    key = str(uuid.uuid4())
    first = await ops.post("/ops/imports", **csv_upload(STOCK_FILE, key))
    assert first.status_code == 202
    job_id = first.json()["id"]

    again = await ops.post("/ops/imports", **csv_upload(STOCK_FILE, key))
    same_file = await ops.post("/ops/imports", **csv_upload(STOCK_FILE))
    gzipped = csv_upload(gzip.compress(STOCK_FILE), **{"Content-Encoding": "gzip"})
    same_gzipped = await ops.post("/ops/imports", **gzipped)
    for replay in (again, same_file, same_gzipped):
        assert replay.status_code == 202
        assert (replay.json()["id"], replay.json()["replayed"]) == (job_id, True)
        assert replay.headers["location"] == f"/ops/imports/{job_id}"

    other_file = await ops.post(
        "/ops/imports", **csv_upload(STOCK_FILE + b"NEW-9,X,1,EUR,1\n", key)
    )
    assert_problem(other_file, 422)
    assert count(db, "import_job") == 1
    assert count(db, "outbox WHERE kind = 'import_stock'") == 1
    assert len(spooled(spool)) == 1  # the first upload's file; the others were let go


async def test_a_queued_import_is_cancelled_at_once_and_an_ended_one_cannot_be(ops, db, spool):
    job = (await ops.post("/ops/imports", **csv_upload(STOCK_FILE))).json()
    cancelled = await ops.post(f"/ops/imports/{job['id']}/cancel", headers=OPS)
    assert cancelled.status_code == 202
    assert (cancelled.json()["status"], cancelled.json()["cancel_requested"]) == ("cancelled", True)
    assert spooled(spool) == []
    again = await ops.post(f"/ops/imports/{job['id']}/cancel", headers=OPS)
    assert again.json()["status"] == "cancelled"

    db.execute("UPDATE import_job SET status = 'done'")
    assert_problem(await ops.post(f"/ops/imports/{job['id']}/cancel", headers=OPS), 409)
    assert_problem(await ops.post(f"/ops/imports/{uuid.uuid4()}/cancel", headers=OPS), 404)
    assert_problem(await ops.get(f"/ops/imports/{uuid.uuid4()}", headers=OPS), 404)


def test_two_runners_of_one_import_take_turns_and_apply_each_batch_once(step_context, db, tmp_path):
    """A redelivered message beside the next one: two tasks on one job at once."""
    spool = tmp_path / "spool"
    spool.mkdir()
    rows = "".join(f"TWO-{n:05d},Product {n},100,EUR,{n % 7}\n" for n in range(1, 3_001))
    bad = "TWO-BAD,Broken,1.5,EUR,1\n" * 10
    (spool / "two.csv").write_text(HEADER + rows + bad)
    settings = step_context.settings.model_copy(
        update={"import_spool_dir": str(spool), "import_batch_rows": 50}
    )
    ctx = dataclasses.replace(step_context, settings=settings)
    size = (spool / "two.csv").stat().st_size
    with ctx.sessions() as session:
        job = stock_import.create_job(session, "two-runners", "sha", "two.csv", size)
        session.commit()
        job_id = job.id

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(lambda _: import_stock(ctx, job_id), range(2)))

    assert "ended" in outcomes  # one saw the file to its end; the other too, or left it to it
    assert set(outcomes) <= {"ended", "elsewhere"}
    row = db.execute(
        "SELECT status, rows_done, rows_failed, bytes_done FROM import_job WHERE id = %s", (job_id,)
    ).fetchone()
    assert row == ("done", 3_010, 10, size)
    assert count(db, "import_row_error") == 10
    assert count(db, "product WHERE sku LIKE 'TWO-%'") == 3_000
    assert count(db, "order_event WHERE type = 'catalog.imported'") == 1
    assert not (spool / "two.csv").exists()
