"""PostgreSQL's CPU for each statement of a checkout, read from its backend's /proc entry.

    python -m bench.checkout_pg_cost [-n 600]

One checkout runs through the whole app in process (the sandbox gateway) and its statements are
recorded as psycopg receives them; each is then sent `n` times on one connection of its own with
a new key, order id, number and authorization each time, and the backend's CPU time is read
before and after. Three ways: back to back (the backend never sleeps), 8 ms apart (each statement
finds the backend asleep, as at 100 checkouts/s over a pool), and 8 ms apart with
`synchronous_commit = off` on that connection only, which tells what the commit's WAL flush
costs. The app never runs with it off: see the README (issue 18).
"""

import argparse
import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import event

from bench.procs import TICK_S
from bench.round_trips import BENCH_DATABASE_URL, api_engines
from orders.api.app import create_app
from orders.api.config import ApiSettings
from orders.db import libpq_url
from stack.samples import make_cart

Statement = tuple[str, dict[str, Any]]
APART_S = 0.008


async def record_checkout(url: str) -> list[Statement]:
    app = create_app(ApiSettings(database_url=url, payment_gateway="sandbox"))
    seen: list[Statement] = []

    def statement(_conn: Any, _cursor: Any, sql: str, params: Any, *_: Any) -> None:
        seen.append((sql, dict(params)))

    async with app.router.lifespan_context(app):
        engines = api_engines(app)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            await client.post("/orders", json=make_cart(), headers={"Idempotency-Key": "warm"})
            app.state.catalog.changed()  # the catalog read is recorded too, kept prices or not
            for engine in engines:
                event.listen(engine, "before_cursor_execute", statement)
            key = {"Idempotency-Key": str(uuid.uuid4())}
            response = await client.post("/orders", json=make_cart(), headers=key)
            for engine in engines:
                event.remove(engine, "before_cursor_execute", statement)
    assert response.status_code == 202, response.text
    return seen


def backend_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def replay(
    url: str, statements: list[Statement], n: int, apart_s: float, sync: bool
) -> list[float]:
    """The backend's CPU ms per execution of each statement, in the order of the checkout."""
    read, claim, write = statements
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        row = conn.execute('SELECT coalesce(max(number), 0) + 10000000 FROM "order"').fetchone()
        number = int(row[0]) if row else 0  # clear of the numbers the sequence will draw
        if not sync:
            conn.execute("SET synchronous_commit = off")
        pid = conn.info.backend_pid
        claimed: list[tuple[str, uuid.UUID]] = []

        def claim_one() -> None:
            params = claim[1] | {"key": uuid.uuid4().hex, "order_id": uuid.uuid4()}
            conn.execute(claim[0], params)
            claimed.append((params["key"], params["order_id"]))

        def write_one() -> None:
            nonlocal number
            key, order_id = claimed.pop()
            number += 1
            params = write[1] | {"k_key": key, "order_ref": order_id, "o_number": number}
            conn.execute(write[0], params | {"p_authorization_id": uuid.uuid4().hex})

        def read_one() -> None:
            conn.execute(read[0], read[1]).fetchall()

        def cost(one: Callable[[], None], times: int) -> float:
            ticks = backend_ticks(pid)
            for _ in range(times):
                one()
                time.sleep(apart_s)
            return 1000 * (backend_ticks(pid) - ticks) * TICK_S / times

        for _ in range(6):  # psycopg prepares a statement at its fifth use
            read_one()
            claim_one()
            write_one()
        return [cost(read_one, n), cost(claim_one, n), cost(write_one, n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=BENCH_DATABASE_URL)
    parser.add_argument("-n", type=int, default=600)
    args = parser.parse_args()
    statements = asyncio.run(record_checkout(args.url))
    kinds = [sql.split(None, 1)[0] for sql, _ in statements]
    assert kinds == ["SELECT", "INSERT", "WITH"], f"not the checkout this replays: {kinds}"
    print(f"backend CPU ms per statement, {args.n} of each")
    print(f"{'':34} {'catalog read':>12} {'claim':>8} {'write':>8} {'total':>8}")
    for name, apart_s, sync in (
        ("back to back", 0.0, True),
        (f"{APART_S * 1000:.0f} ms apart", APART_S, True),
        (f"{APART_S * 1000:.0f} ms apart, no WAL flush", APART_S, False),
    ):
        ms = replay(args.url, statements, args.n, apart_s, sync)
        print(f"{name:34} {ms[0]:12.3f} {ms[1]:8.3f} {ms[2]:8.3f} {sum(ms):8.3f}")


if __name__ == "__main__":
    main()
