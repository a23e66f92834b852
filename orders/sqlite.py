"""SQLite for the embedded demo: the same code and migrations, on a file, no server.

Several processes (API, relay, worker children) write to it, so it runs in WAL mode with a busy
timeout; SQLite serialises writers, which stands in for PostgreSQL's row locks here. Production
and the tests run PostgreSQL."""

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def async_url(url: str) -> str:
    """`sqlite:///x.db` -> `sqlite+aiosqlite:///x.db`; other URLs unchanged."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.drivername == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    return url


def sync_url(url: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite").render_as_string(hide_password=False)
    return url


def tune(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _pragmas(connection: Any, _: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
