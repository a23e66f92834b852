"""The process-pool tier: product images resized after the 202, in other processes."""

import asyncio
import io
import time
from typing import Any

import pytest
from PIL import Image

from bench.loop_latency import probe_while, sample_png
from tests.helpers import OPS, eventually, running_app


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 80, 40)).save(out, "PNG")
    return out.getvalue()


async def upload(client, sku: str, data: bytes, content_type: str = "image/png"):
    return await client.post(
        f"/products/{sku}/images", files={"file": ("photo.png", data, content_type)}, headers=OPS
    )


async def ready(client, url: str) -> dict[str, Any]:
    """The image's status once it is no longer processing (within 20 s)."""
    for _ in range(400):
        status: dict[str, Any] = (await client.get(url)).json()
        if status["status"] != "processing":
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"{url} still processing")


async def test_an_upload_is_resized_into_variants_after_the_202(client, db):
    response = await upload(client, "MUG-001", png(2000, 1000))
    assert response.status_code == 202
    assert response.json()["status"] == "processing"
    status = await ready(client, response.headers["location"])

    assert status["status"] == "ready"
    assert [(v["size"], v["width"], v["height"]) for v in status["variants"]] == [
        (128, 128, 64),
        (512, 512, 256),
        (1024, 1024, 512),
    ]
    variant = await client.get(status["variants"][1]["url"])
    assert variant.headers["content-type"] == "image/webp"
    with Image.open(io.BytesIO(variant.content)) as image:
        assert image.size == (512, 256)


async def test_uploads_are_refused_without_the_key_or_with_a_wrong_type(client, db):
    assert (
        await client.post("/products/MUG-001/images", files={"file": ("a", b"x")})
    ).status_code == 401
    assert (await upload(client, "MUG-001", b"hello", "text/plain")).status_code == 415
    assert (await upload(client, "NO-SUCH-SKU", png(10, 10))).status_code == 404


async def test_an_upload_over_the_size_limit_is_413(db, test_settings):
    async with running_app(test_settings(max_image_bytes=10_000)) as client:
        response = await upload(client, "MUG-001", b"\x89PNG" + b"0" * 20_000)
    assert response.status_code == 413


async def test_bytes_that_are_no_image_end_failed_not_stuck(client, db):
    response = await upload(client, "MUG-001", b"\x89PNG but not really")
    status = await ready(client, response.headers["location"])
    assert status["status"] == "failed"
    assert "not a readable image" in status["error"]


async def test_images_left_processing_by_a_crash_are_marked_interrupted_on_start(db, test_settings):
    db.execute(
        "INSERT INTO product_image (id, sku, status, content_type, original_bytes, created_at,"
        " updated_at) VALUES (gen_random_uuid(), 'MUG-001', 'processing', 'image/png', 1,"
        " now(), now())"
    )
    async with running_app(test_settings()):
        pass
    assert db.execute("SELECT status FROM product_image").fetchone()[0] == "interrupted"


@pytest.mark.slow
async def test_the_event_loop_keeps_answering_while_a_batch_resizes(client, db):
    """Probes of /health/live on the API's own loop keep coming back while six large images resize in
    the pool. The latencies (and the same batch in threads) are printed; bench.loop_latency
    measures them properly."""
    data = sample_png()
    responses = [await upload(client, "MUG-001", data) for _ in range(6)]
    started = time.perf_counter()

    async def batch_done() -> None:
        for response in responses:
            await ready(client, response.headers["location"])

    latencies = await probe_while(client, batch_done())
    print(
        f"pool: {len(latencies)} probes in {time.perf_counter() - started:.2f} s, max {latencies[-1]:.1f} ms"
    )
    assert len(latencies) >= 5  # the loop answered all along, not once at the end
    await eventually(
        lambda: (
            db.execute("SELECT count(*) FROM product_image WHERE status = 'ready'").fetchone()[0]
            == 6
        ),
        what="six ready images",
    )
