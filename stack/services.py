"""A clean slate for a run: a fresh, migrated and seeded database, and empty queues."""

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
from kombu.connection import Connection
from sqlalchemy.engine import make_url

from orders.db import libpq_url
from orders.messages import QUEUES
from stack.processes import ROOT


def fresh_database(url: str) -> None:
    """Drop and create the database (or the SQLite file), migrate it, load the sample catalog."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        for suffix in ("", "-wal", "-shm"):  # a stale write-ahead log would replay the old run
            Path(f"{parsed.database}{suffix}").unlink(missing_ok=True)
    else:
        with psycopg.connect(libpq_url(url, database="postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{parsed.database}"')
    env = {"DATABASE_URL": url}
    for module in (["alembic", "upgrade", "head"], ["orders.seed"]):
        subprocess.run(
            [sys.executable, "-m", *module],
            cwd=ROOT,
            env=os.environ | env,
            check=True,
            capture_output=True,
        )


def empty_queues(broker_url: str, broker_folder: str | None = None) -> None:
    """Purge every queue of the contract; the embedded demo's file transport loses its folder."""
    if broker_folder is not None:
        shutil.rmtree(broker_folder, ignore_errors=True)
        return
    with Connection(broker_url, connect_timeout=5) as connection:  # type: ignore[no-untyped-call]
        for name in QUEUES:
            channel = connection.channel()
            with contextlib.suppress(Exception):  # not declared yet: nothing to purge
                channel.queue_purge(name.value)
