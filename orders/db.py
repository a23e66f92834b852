"""Engines and sessions for both sides: async for the API, sync for the workers and the relay.

The domain's shared functions are synchronous (the workers' Celery tasks are plain functions); the
API runs them on its async session with `run`, SQLAlchemy's bridge between the two.

With a `sqlite:` URL (the embedded demo) several processes write one file, so it runs in WAL mode
with a busy timeout; SQLite serialises writers, which stands in for PostgreSQL's row locks there.
Production and the tests run PostgreSQL."""

import time
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from sqlalchemy import Engine, Executable, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session
from sqlmodel.ext.asyncio.session import AsyncSession

from orders.config import Settings

P = ParamSpec("P")
T = TypeVar("T")


def make_async_engines(
    settings: Settings, application_name: str
) -> tuple[AsyncEngine, AsyncEngine]:
    """The API's two pools, each sized on purpose (a request holds a connection for a few ms):
    one for transactions, and one whose connections stay in autocommit, for code whose every
    write is one statement (checkout, the audit row). On PostgreSQL a statement is atomic on its
    own, so those need no BEGIN and COMMIT round trips. A pool of their own, because switching a
    shared pool's connection into autocommit and back cost 0.085 ms of CPU a statement (README,
    issue 18). SQLite keeps its transactions, on one engine."""
    if is_sqlite(settings.database_url):
        engine = create_async_engine(
            _driver(settings.database_url, "sqlite+aiosqlite"), hide_parameters=True
        )
        _tune_sqlite(engine.sync_engine)
        return engine, engine
    return (
        _async_engine(settings, application_name),
        _async_engine(settings, application_name, isolation_level="AUTOCOMMIT"),
    )


def _async_engine(settings: Settings, application_name: str, **options: Any) -> AsyncEngine:
    return create_async_engine(
        settings.database_url,
        pool_pre_ping=False,  # a dead connection fails one request with 503, not every checkout
        pool_use_lifo=True,  # the last connection back goes out first: few backends kept busy
        hide_parameters=True,  # errors name the SQL, never the customer's data bound into it
        **_pool_options(settings, application_name),
        **options,
    )


def make_engine(settings: Settings, application_name: str) -> Engine:
    if is_sqlite(settings.database_url):
        engine = create_engine(sync_url(settings.database_url), hide_parameters=True)
        _tune_sqlite(engine)
        return engine
    engine = create_engine(
        settings.database_url,
        hide_parameters=True,
        **_pool_options(settings, application_name),
    )
    _ping_after_idle(engine, PING_AFTER_IDLE_S)
    return engine


# A worker's connection idle this long is pinged before use (see `_ping_after_idle`).
PING_AFTER_IDLE_S = 5.0


def _ping_after_idle(engine: Engine, idle_s: float) -> None:
    """SQLAlchemy's `pool_pre_ping`, only for a connection that sat in the pool `idle_s` or more.

    Workers sit idle for long, and a connection that died meanwhile (a database restart, a
    firewall's idle timeout) must not fail a step: it is pinged, found dead and replaced (the pool
    tries again on a DisconnectionError). A connection in steady use is not: a ping before every
    transaction cost a round trip and 0.13 ms of client CPU (measured), six an order in the step
    and render tasks. If one
    dies in use, its statement fails once, every task retries OperationalError, and SQLAlchemy
    replaces the pool's other connections on that first disconnect."""

    @event.listens_for(engine, "checkin")
    def checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < idle_s:
            return  # new, or in steady use
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise DisconnectionError("a pooled connection died while idle") from error


def connect_args(settings: Settings, application_name: str) -> dict[str, Any]:
    """libpq's: bounded connect, keepalives and tcp_user_timeout, so a silent peer fails a
    connection within DB_DEAD_PEER_TIMEOUT_S instead of holding it forever."""
    dead_after = settings.db_dead_peer_timeout_s
    return {
        "connect_timeout": settings.db_connect_timeout_s,
        "application_name": application_name,
        "keepalives": 1,
        "keepalives_idle": max(1, dead_after // 2),
        "keepalives_interval": max(1, dead_after // 8),
        "keepalives_count": 3,
        "tcp_user_timeout": dead_after * 1000,
    }


def _pool_options(settings: Settings, application_name: str) -> dict[str, Any]:
    connect_args_ = connect_args(settings, application_name)
    if settings.db_statement_timeout_ms:
        connect_args_["options"] = f"-c statement_timeout={settings.db_statement_timeout_ms}"
    return {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout_s,
        "connect_args": connect_args_,
    }


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, class_=Session, expire_on_commit=False)


def make_async_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


async def run(
    session: AsyncSession, fn: Callable[Concatenate[Session, P], T], *args: P.args, **kw: P.kwargs
) -> T:
    """Run one of the domain's synchronous functions on an async session, without blocking the
    event loop: every statement inside still awaits its connection."""

    def call(sync: Any) -> T:
        return fn(cast(Session, sync), *args, **kw)

    return await session.run_sync(call)


def together(session: Session, *statements: Executable) -> None:
    """Writes that commit together. On PostgreSQL one statement, every write but the last a
    data-modifying CTE of it, atomic even on an autocommit session; on SQLite in turn, in the
    caller's transaction."""
    if session.get_bind().dialect.name == "sqlite":
        for statement in statements:
            session.exec(statement)  # type: ignore[call-overload]
        return
    *ctes, last = statements
    for i, write in enumerate(ctes):
        last = last.add_cte(write.cte(f"together_{i}"))  # type: ignore[attr-defined]
    session.exec(last)  # type: ignore[call-overload]


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sync_url(url: str) -> str:
    """`sqlite+aiosqlite:///x.db` -> `sqlite:///x.db`; other URLs unchanged."""
    return _driver(url, "sqlite") if is_sqlite(url) else url


def _driver(url: str, drivername: str) -> str:
    return make_url(url).set(drivername=drivername).render_as_string(hide_password=False)


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _pragmas(connection: Any, _: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def ensure_database(url: str) -> bool:
    """Create the PostgreSQL database named in `url` if it is missing; True if it was created."""
    import psycopg

    parsed = make_url(url)
    if not parsed.drivername.startswith("postgresql"):
        return False
    with psycopg.connect(libpq_url(url, database="postgres"), autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (parsed.database,))
        if found.fetchone() is not None:
            return False
        conn.execute(f'CREATE DATABASE "{parsed.database}"')
        return True


def libpq_url(url: str, database: str | None = None) -> str:
    """The URL psycopg itself takes: no `+psycopg` driver suffix (optionally another database)."""
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


if __name__ == "__main__":  # `python -m orders.db`: create DATABASE_URL's database if missing
    url = Settings().database_url
    print(f"created {url}" if ensure_database(url) else f"database ready: {url}")
