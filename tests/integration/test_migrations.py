"""Alembic: the revisions build the schema the models describe, and can be undone."""

import psycopg
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine
from sqlmodel import SQLModel

from orders.db import ensure_database
from tests.support import TEST_DATABASE_URL, alembic_config, libpq_url

ROUND_TRIP_URL = TEST_DATABASE_URL.rsplit("/", 1)[0] + "/orders_migrations_test"


def tables(url: str) -> set[str]:
    with psycopg.connect(libpq_url(url)) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    return {row[0] for row in rows} - {"alembic_version"}


def test_upgrade_downgrade_upgrade_round_trip():
    ensure_database(ROUND_TRIP_URL)
    config = alembic_config(ROUND_TRIP_URL)
    command.downgrade(config, "base")
    command.upgrade(config, "head")
    assert tables(ROUND_TRIP_URL) == set(SQLModel.metadata.tables)
    command.downgrade(config, "base")
    assert tables(ROUND_TRIP_URL) == set()
    command.upgrade(config, "head")
    assert tables(ROUND_TRIP_URL) == set(SQLModel.metadata.tables)


def test_models_and_migrations_agree():
    engine = create_engine(ROUND_TRIP_URL)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, SQLModel.metadata) == []
    engine.dispose()
