"""CPU per INSERT through each layer the API could use: what a round trip costs besides the wait.

    python -m bench.statement_cost [--url postgresql+psycopg://...] [-n 2000]

Inserts audit rows in one transaction, rolled back at the end, on uvloop as the API runs: SQLAlchemy's AsyncSession
with a freshly built Core statement (what the checkout does), the AsyncConnection with a pre-built
statement, and raw psycopg through the same connection.
"""

import argparse
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import psycopg
import uvloop
from psycopg.types.json import Jsonb
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from orders.models import AuditLog, table

COLUMNS = ("at", "action", "actor", "request_id", "order_id", "detail")
RAW = (
    "INSERT INTO audit_log (at, action, actor, request_id, order_id, detail)"
    " VALUES (%s, %s, %s, %s, %s, %s)"
)


def row() -> dict[str, Any]:
    return {
        "at": datetime.now(UTC),
        "action": "bench.statement",
        "actor": "bench",
        "request_id": uuid.uuid4().hex,
        "order_id": uuid.uuid4(),
        "detail": {"n": 1},
    }


async def measure(name: str, n: int, one: Callable[[], Awaitable[object]]) -> None:
    await one()  # compiled and prepared before the clock starts
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(n):
        await one()
    cpu_ms = 1000 * (time.process_time() - cpu) / n
    wall_ms = 1000 * (time.perf_counter() - wall) / n
    print(f"{name:44} {cpu_ms:6.3f} ms CPU, {wall_ms:6.3f} ms wall per INSERT")


async def run(url: str, n: int) -> None:
    engine = create_async_engine(url, pool_size=1)
    audit = table(AuditLog)
    prebuilt = insert(audit)
    try:
        async with AsyncSession(engine) as session:
            await measure(
                "AsyncSession.exec(insert(...).values(...))",
                n,
                lambda: session.exec(insert(audit).values(**row())),
            )
            connection: AsyncConnection = await session.connection()
            await measure(
                "AsyncConnection.execute(prebuilt, params)",
                n,
                lambda: connection.execute(prebuilt, row()),
            )
            raw = (await connection.get_raw_connection()).driver_connection
            assert isinstance(raw, psycopg.AsyncConnection)
            async with raw.cursor() as cursor:

                def raw_insert() -> Awaitable[object]:
                    values = row()
                    values["detail"] = Jsonb(values["detail"])
                    return cursor.execute(RAW, [values[c] for c in COLUMNS])

                await measure("psycopg cursor.execute(sql, params)", n, raw_insert)
            await session.rollback()
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/orders")
    parser.add_argument("-n", type=int, default=2000)
    args = parser.parse_args()
    uvloop.run(run(args.url, args.n))  # the loop uvicorn runs the API on


if __name__ == "__main__":
    main()
