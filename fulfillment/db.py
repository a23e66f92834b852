"""Synchronous sessions for the workers and the relay (Celery tasks are plain functions)."""

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from fulfillment.config import Settings
from orders.sqlite import is_sqlite, sync_url, tune


def make_engine(settings: Settings, application_name: str) -> Engine:
    if is_sqlite(settings.database_url):
        engine = create_engine(sync_url(settings.database_url))
        tune(engine)
        return engine
    connect_args: dict[str, object] = {}
    if settings.database_url.startswith("postgresql"):
        connect_args = {"connect_timeout": 5, "application_name": application_name}
    return create_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        pool_pre_ping=True,  # workers sit idle for long; a stale connection must not fail a step
        connect_args=connect_args,
    )


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, class_=Session, expire_on_commit=False)
