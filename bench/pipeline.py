"""Time from 202 to `completed`, against a running stack (API, relay, workers).

    python -m bench.pipeline --url http://127.0.0.1:8000 --single 20 --burst 100

--single: orders placed one at a time on an idle system, each followed until completed.
--burst: orders placed as fast as the API takes them; completed orders per second overall.
"""

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import datetime
from typing import Any

import httpx

from orders.stats import percentile
from stack.samples import make_cart


async def follow(
    client: httpx.AsyncClient,
    order: dict[str, Any],
    started: float,
    every_s: float = 0.01,
    timeout_s: float = 600,
) -> float:
    auth = {"Authorization": f"Bearer {order['access_token']}"}
    while time.perf_counter() - started < timeout_s:
        status = (await client.get(order["status_url"], headers=auth)).json()["status"]
        if status in ("completed", "cancelled", "failed"):
            assert status == "completed", status
            return time.perf_counter() - started
        await asyncio.sleep(every_s)
    raise TimeoutError(f"order {order['id']} not settled after {timeout_s} s")


async def first_step_ms(client: httpx.AsyncClient, order: dict[str, Any]) -> float:
    """From the order's commit to the commit of its reservation, by the database's clocks."""
    auth = {"Authorization": f"Bearer {order['access_token']}"}
    events = (await client.get(order["events_url"], headers=auth)).json()
    at = {e["type"]: datetime.fromisoformat(e["occurred_at"]) for e in events}
    return (at["order.reserved"] - at["order.placed"]).total_seconds() * 1000


async def place(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.post(
        "/orders", json=make_cart(), headers={"Idempotency-Key": str(uuid.uuid4())}
    )
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


async def run(url: str, single: int, burst: int) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        if single:
            times, first = [], []
            for _ in range(single):
                started = time.perf_counter()
                order = await place(client)
                times.append(await follow(client, order, started))
                first.append(await first_step_ms(client, order))
                await asyncio.sleep(0.2)  # idle between orders
            ms = sorted(t * 1000 for t in times)
            print(
                f"single orders ({single}): 202 -> completed ms p50 {percentile(ms, 50):.0f}"
                f"  p99 {percentile(ms, 99):.0f}  max {ms[-1]:.0f}  mean {statistics.fmean(ms):.0f}"
            )
            first.sort()
            print(
                f"placed -> reserved (first step committed) ms p50 {percentile(first, 50):.0f}"
                f"  p99 {percentile(first, 99):.0f}  max {first[-1]:.0f}"
            )
        if burst:
            limit = asyncio.Semaphore(32)  # connections, as a storefront's pool would have

            async def place_limited() -> dict[str, Any]:
                async with limit:
                    return await place(client)

            started = time.perf_counter()
            orders = await asyncio.gather(*(place_limited() for _ in range(burst)))
            placed = time.perf_counter() - started
            # Polled gently: the benchmark must not take the CPU the workers need.
            durations = await asyncio.gather(*(follow(client, o, started, 1.0) for o in orders))
            total = max(durations)
            print(
                f"burst of {burst}: placed in {placed:.1f} s, all completed after {total:.1f} s:"
                f" {burst / total:.1f} completed orders/s"
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--single", type=int, default=20)
    parser.add_argument("--burst", type=int, default=100)
    args = parser.parse_args()
    asyncio.run(run(args.url, args.single, args.burst))


if __name__ == "__main__":
    main()
