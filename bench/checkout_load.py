"""Closed-loop checkout load: N orders over C connections, each with its own Idempotency-Key.

    python -m bench.checkout_load --url http://127.0.0.1:8000 -n 2000 -c 32

Prints the latency percentiles of POST /orders as the client saw them.
"""

import argparse
import asyncio
import statistics
import time
import uuid

import httpx

from orders.stats import percentile
from stack.samples import make_cart


async def run(url: str, total: int, concurrency: int) -> None:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    todo = iter(range(total))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=10) as client:

        async def worker() -> None:
            for _ in todo:
                started = time.perf_counter()
                response = await client.post(
                    "/orders", json=make_cart(), headers={"Idempotency-Key": str(uuid.uuid4())}
                )
                latencies.append((time.perf_counter() - started) * 1000)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started

    ms = sorted(latencies)
    print(
        f"{total} orders, {concurrency} connections, {elapsed:.1f} s, {total / elapsed:.0f} orders/s"
    )
    print(f"statuses: {statuses}")
    print(
        f"POST /orders ms: p50 {percentile(ms, 50):.1f}  p90 {percentile(ms, 90):.1f}  "
        f"p99 {percentile(ms, 99):.1f}  max {ms[-1]:.1f}  mean {statistics.fmean(ms):.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("-c", type=int, default=32)
    args = parser.parse_args()
    asyncio.run(run(args.url, args.n, args.c))


if __name__ == "__main__":
    main()
