"""Orders through the whole pipeline, for `make bench`: a burst placed at once, or a steady rate
placed open loop; each followed in PostgreSQL until completed, with the time from 202 to
`completed` per order. And the worker layouts they run on."""

import asyncio
import os
import time
import uuid
from typing import Any

import httpx
import psycopg

from orders.db import libpq_url
from orders.messages import Queue
from orders.stats import percentile
from stack.processes import Stack
from stack.samples import make_cart

# Worker layouts for the pipeline: (name, queues, prefork processes). The render limit of a layout
# counts the processes that take the invoices queue. The split layout renders on one process per
# CPU: the render is most of an order's CPU (about 88 of 135 ms in the render worker), so one
# render process can use one core only, and the burst was bound by it with the other core partly
# idle (measured, 300 orders, two runs each: 9.6-9.8 orders/s with one render process, 13.8-13.9
# with two; the same CPU per order).
STEPS, INVOICES, WEBHOOKS = Queue.STEPS.value, Queue.INVOICES.value, Queue.WEBHOOKS.value
CPUS = os.cpu_count() or 1
LAYOUTS: dict[str, list[tuple[str, str, int]]] = {
    "split": [("render", INVOICES, CPUS), ("steps", f"{STEPS},{WEBHOOKS}", 2)],
    "one pool": [("worker", f"{STEPS},{INVOICES},{WEBHOOKS}", 2)],
}


def render_processes(layout: list[tuple[str, str, int]]) -> int:
    return sum(n for _, queues, n in layout if INVOICES in queues.split(","))


def start_workers(stack: Stack, layout: list[tuple[str, str, int]]) -> None:
    for name, queues, processes in layout:
        stack.worker(name, queues, processes, loglevel="WARNING")
    stack.ready()


async def place_burst(api: str, count: int) -> list[str]:
    limit = asyncio.Semaphore(32)
    async with httpx.AsyncClient(base_url=api, timeout=30) as client:

        async def one() -> str:
            key = {"Idempotency-Key": str(uuid.uuid4())}
            async with limit:
                for _ in range(10):  # as a storefront would: 503 -> wait, same key again
                    r = await client.post("/orders", json=make_cart(), headers=key)
                    if r.status_code not in (409, 503):
                        break
                    await asyncio.sleep(float(r.headers.get("retry-after", "1")))
                r.raise_for_status()
                return str(r.json()["id"])

        return await asyncio.gather(*(one() for _ in range(count)))


def pipeline(api: str, db_url: str, count: int, timeout_s: float) -> dict[str, Any]:
    started = time.perf_counter()
    ids = asyncio.run(place_burst(api, count))
    placed_s = time.perf_counter() - started
    return {"orders": count, "placed_in_s": round(placed_s, 1)} | completed(
        db_url, ids, started, timeout_s
    )


def completed(db_url: str, ids: list[str], started: float, timeout_s: float) -> dict[str, Any]:
    """Wait until every order is completed; their times from 202 to `completed`."""
    count = len(ids)
    with psycopg.connect(libpq_url(db_url), autocommit=True) as conn:
        while True:
            done = conn.execute(
                "SELECT count(*) FROM \"order\" WHERE id = ANY(%s::uuid[]) AND status = 'completed'",
                (ids,),
            ).fetchone()
            if done and done[0] == count:
                break
            if time.perf_counter() - started > timeout_s:
                raise RuntimeError(f"pipeline: {done} of {count} completed after {timeout_s} s")
            time.sleep(0.2)
        total_s = time.perf_counter() - started
        rows = conn.execute(
            "SELECT extract(epoch FROM e.occurred_at - o.created_at) * 1000,"
            " extract(epoch FROM e.occurred_at - min(o.created_at) OVER ()) * 1000"
            ' FROM "order" o JOIN order_event e ON e.order_id = o.id'
            " AND e.type = 'order.completed' WHERE o.id = ANY(%s::uuid[])",
            (ids,),
        ).fetchall()
    p50, p95, p99 = (percentile((float(r[0]) for r in rows), p) for p in (50, 95, 99))
    assert p50 is not None  # every order completed, so each has a time
    assert p95 is not None
    assert p99 is not None
    return {
        "orders": count,
        "all_completed_after_s": round(total_s, 1),
        "completed_per_s": round(count / total_s, 2),
        "first_completed_after_ms": round(min(float(r[1]) for r in rows)),
        "p50_202_to_completed_ms": round(p50),
        "p95_202_to_completed_ms": round(p95),
        "p99_202_to_completed_ms": round(p99),
    }


async def place_steady(api: str, rate: float, seconds: float) -> list[str]:
    """Open loop: an order every 1/rate seconds whatever the answers do, as storefronts would."""
    async with httpx.AsyncClient(base_url=api, timeout=30) as client:

        async def one() -> str:
            key = {"Idempotency-Key": str(uuid.uuid4())}
            r = await client.post("/orders", json=make_cart(), headers=key)
            r.raise_for_status()
            return str(r.json()["id"])

        tasks, started = [], time.perf_counter()
        for i in range(round(rate * seconds)):
            await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one()))
        return list(await asyncio.gather(*tasks))


def steady(api: str, db_url: str, rate: float, seconds: float, timeout_s: float) -> dict[str, Any]:
    started = time.perf_counter()
    ids = asyncio.run(place_steady(api, rate, seconds))
    return {"offered_rate": rate, "seconds": seconds} | completed(db_url, ids, started, timeout_s)


# An order's events when it completes: an endpoint on all of them gets five deliveries an order.
ORDER_EVENTS = ["order.placed", "order.reserved", "order.paid", "order.invoiced", "order.completed"]


def subscribe(api: str, url: str, ops_key: str) -> str:
    """An endpoint on every event of an order; its id."""
    body = {"url": url, "event_types": ORDER_EVENTS}
    response = httpx.post(f"{api}/ops/webhook-endpoints", json=body, headers={"X-API-Key": ops_key})
    response.raise_for_status()
    return str(response.json()["id"])


def delivered(db_url: str, expected: int, timeout_s: float) -> None:
    """Wait until `expected` webhook deliveries are delivered."""
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(libpq_url(db_url), autocommit=True) as conn:
        while True:
            query = "SELECT count(*) FROM webhook_delivery WHERE status = 'delivered'"
            row = conn.execute(query).fetchone()
            if row is not None and row[0] >= expected:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{row} of {expected} webhooks delivered after {timeout_s} s")
            time.sleep(0.2)
