"""Round trips to PostgreSQL, counted with SQLAlchemy's events: every statement, and the BEGIN and
COMMIT (or ROLLBACK) that psycopg sends around a transaction's statements on a connection that is
not in autocommit. `make bench` prints the count for one checkout; a test pins it.

    python -m bench.round_trips   # one checkout on the bench database, in process
"""

import asyncio
import uuid
from typing import Any

import httpx
from fastapi import FastAPI
from psycopg import pq
from sqlalchemy import Engine, event

from orders.api.app import create_app
from orders.api.config import ApiSettings
from stack.processes import eventually
from stack.samples import make_cart

BENCH_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/orders_bench"


def api_engines(app: FastAPI) -> list[Engine]:
    """The engines behind the API's sessions: its two pools (orders.db.make_async_engines)."""
    binds = {app.state.sessions.kw["bind"], app.state.autocommit_sessions.kw["bind"]}
    return [bind.sync_engine for bind in binds]


class RoundTrips:
    """Counts the round trips of every connection of `engines` while attached."""

    def __init__(self, *engines: Engine) -> None:
        self.engines = engines
        self.count = 0
        self.statements: list[str] = []

    def __enter__(self) -> "RoundTrips":
        for engine in self.engines:
            event.listen(engine, "before_cursor_execute", self._statement)
            event.listen(engine, "commit", self._end)
            event.listen(engine, "rollback", self._end)
        return self

    def __exit__(self, *_: object) -> None:
        for engine in self.engines:
            event.remove(engine, "before_cursor_execute", self._statement)
            event.remove(engine, "commit", self._end)
            event.remove(engine, "rollback", self._end)

    def _statement(self, conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        driver = conn.connection.driver_connection
        if not driver.autocommit and driver.info.transaction_status == pq.TransactionStatus.IDLE:
            self.count += 1  # psycopg sends BEGIN before the transaction's first statement
            self.statements.append("BEGIN")
        self.count += 1
        self.statements.append(statement.split(None, 1)[0])

    def _end(self, conn: Any) -> None:
        driver = conn.connection.driver_connection
        if not driver.autocommit and driver.info.transaction_status != pq.TransactionStatus.IDLE:
            self.count += 1
            self.statements.append("END")


async def checkout_round_trips(settings: ApiSettings) -> tuple[RoundTrips, RoundTrips]:
    """Checkouts through the whole app in process (the sandbox gateway), the work after the
    response included: one on a price book that does not hold the cart's SKUs, and one on a
    book that does (orders.catalog), which is the checkout of a process in steady use."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        catalog = app.state.catalog
        # Prices are kept only while the API's LISTEN connection is up.
        await eventually(lambda: catalog.trusted, 10, "the API's LISTEN connection")
        engines = api_engines(app)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            await client.post("/orders", json=make_cart(), headers={"Idempotency-Key": "warm"})
            catalog.changed()
            counted = []
            for _ in range(2):
                with RoundTrips(*engines) as trips:
                    response = await client.post(
                        "/orders", json=make_cart(), headers={"Idempotency-Key": str(uuid.uuid4())}
                    )
                    assert response.status_code == 202, response.text
                counted.append(trips)
    return counted[0], counted[1]


def main() -> None:
    settings = ApiSettings(database_url=BENCH_DATABASE_URL, payment_gateway="sandbox")
    cold, warm = asyncio.run(checkout_round_trips(settings))
    for name, trips in (("the cart's prices not yet kept", cold), ("kept", warm)):
        print(f"{trips.count} round trips per checkout, {name}: {' '.join(trips.statements)}")


if __name__ == "__main__":
    main()
