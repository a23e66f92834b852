"""Alembic: the revisions build the schema the models describe, and can be undone."""

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine
from sqlmodel import SQLModel

from orders.db import ensure_database, libpq_url
from tests.helpers import alembic_config, sibling_database

ROUND_TRIP_URL = sibling_database("orders_migrations_test")


@pytest.fixture
def upgraded() -> str:
    """A database of its own at the newest revision, whatever another test left it at."""
    ensure_database(ROUND_TRIP_URL)
    command.upgrade(alembic_config(ROUND_TRIP_URL), "head")
    return ROUND_TRIP_URL


def tables(url: str) -> set[str]:
    with psycopg.connect(libpq_url(url)) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    return {row[0] for row in rows} - {"alembic_version"}


def test_upgrade_downgrade_upgrade_round_trip(upgraded):
    config = alembic_config(upgraded)
    assert tables(upgraded) == set(SQLModel.metadata.tables)
    command.downgrade(config, "base")
    assert tables(upgraded) == set()
    command.upgrade(config, "head")
    assert tables(upgraded) == set(SQLModel.metadata.tables)


def test_models_and_migrations_agree(upgraded):
    engine = create_engine(upgraded)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, SQLModel.metadata) == []
    engine.dispose()
