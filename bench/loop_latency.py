"""Event-loop latency while a batch of images resizes: in the process pool vs in threads.

    python -m bench.loop_latency --images 6

A health endpoint is probed every 5 ms on the same loop while the batch runs; its latency is the
loop's. (Pillow releases the GIL inside resize and encode, so threads fare well here too; the pool
is the tool for CPU-bound Python that holds the GIL, and it isolates a crash or a leak.)
"""

import argparse
import asyncio
import io
import multiprocessing
import time
from collections.abc import Awaitable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import httpx
from fastapi import FastAPI
from PIL import Image

from orders.images import resize_variants

SIZES = (128, 512, 1024)


def sample_png(width: int = 2400, height: int = 1800) -> bytes:
    image = Image.effect_mandelbrot((width, height), (-2, -1.5, 1, 1.5), 100).convert("RGB")
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


async def probe_while(client: httpx.AsyncClient, work: Awaitable[Any]) -> list[float]:
    """Latencies (ms) of /health/live probes sent while `work` runs."""
    latencies = []
    task = asyncio.ensure_future(work)
    while not task.done():
        started = time.perf_counter()
        (await client.get("/health/live")).raise_for_status()
        latencies.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.005)
    await task
    return sorted(latencies)


def summary(name: str, seconds: float, ms: list[float]) -> str:
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return (
        f"{name:7} batch {seconds:5.2f} s  probes {len(ms):4}  loop latency ms: "
        f"p50 {ms[len(ms) // 2]:.1f}  p99 {p99:.1f}  max {ms[-1]:.1f}"
    )


async def run(images: int) -> None:
    app = FastAPI()

    @app.get("/health/live")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    data = sample_png()
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        await loop.run_in_executor(pool, resize_variants, data, SIZES)  # start the workers
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for name in ("process", "thread"):
                started = time.perf_counter()
                batch: list[Awaitable[Any]]
                if name == "process":
                    batch = [
                        loop.run_in_executor(pool, resize_variants, data, SIZES)
                        for _ in range(images)
                    ]
                else:
                    batch = [asyncio.to_thread(resize_variants, data, SIZES) for _ in range(images)]
                ms = await probe_while(client, asyncio.gather(*batch))
                print(summary(name, time.perf_counter() - started, ms))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=6)
    asyncio.run(run(parser.parse_args().images))


if __name__ == "__main__":
    main()
