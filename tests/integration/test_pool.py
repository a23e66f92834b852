"""The workers' connection pool against a real PostgreSQL: a connection that died while idle in
the pool is found and replaced before a step uses it; one in steady use is not pinged."""

import time

import psycopg
import pytest
from sqlalchemy import text

from fulfillment.config import WorkerSettings
from orders import db as orders_db
from orders.db import libpq_url, make_engine


@pytest.fixture
def short_idle(monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setattr(orders_db, "PING_AFTER_IDLE_S", 0.5)
    return 0.5


def backend_pid(engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def terminate(database_url: str, pid: int) -> None:
    with psycopg.connect(libpq_url(database_url), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        deadline = time.monotonic() + 10
        while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
            assert time.monotonic() < deadline, "the backend did not go"
            time.sleep(0.05)


def test_a_connection_that_died_while_idle_is_replaced_before_use(database_url, short_idle):
    engine = make_engine(WorkerSettings(database_url=database_url, db_pool_size=1), "test-pool")
    try:
        first = backend_pid(engine)
        terminate(database_url, first)  # as a database restart or a firewall would
        time.sleep(short_idle + 0.2)
        assert backend_pid(engine) != first  # pinged, found dead, replaced: no error
    finally:
        engine.dispose()


def test_a_connection_in_steady_use_is_not_pinged(database_url, short_idle):
    engine = make_engine(WorkerSettings(database_url=database_url, db_pool_size=1), "test-pool")
    pings: list[int] = []
    ping = engine.dialect.do_ping

    def counted(dbapi_connection) -> bool:
        pings.append(1)
        return ping(dbapi_connection)

    engine.dialect.do_ping = counted  # type: ignore[method-assign]
    try:
        for _ in range(5):
            backend_pid(engine)
        assert pings == []
        time.sleep(short_idle + 0.2)
        backend_pid(engine)
        assert pings == [1]
    finally:
        engine.dispose()
