"""The async engine and sessions of the web side."""

from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from orders.config import Settings
from orders.sqlite import async_url, is_sqlite, tune


def make_engine(settings: Settings) -> AsyncEngine:
    """One pool per process, sized on purpose: a request holds one connection for a few ms."""
    if is_sqlite(settings.database_url):
        engine = create_async_engine(async_url(settings.database_url))
        tune(engine.sync_engine)
        return engine
    connect_args: dict[str, object] = {}
    if settings.database_url.startswith("postgresql"):
        connect_args = {
            "connect_timeout": settings.db_connect_timeout_s,
            "options": f"-c statement_timeout={settings.db_statement_timeout_ms}",
            "application_name": "orders-api",
        }
    return create_async_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_s,
        pool_pre_ping=False,  # a dead connection fails one request with 503, not every checkout
        connect_args=connect_args,
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


async def session_scope(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with factory() as session:
        yield session


def ensure_database(url: str) -> bool:
    """Create the PostgreSQL database named in `url` if it is missing; True if it was created."""
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if not parsed.drivername.startswith("postgresql"):
        return False
    admin = parsed.set(drivername="postgresql", database="postgres")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (parsed.database,))
        if found.fetchone() is not None:
            return False
        conn.execute(f'CREATE DATABASE "{parsed.database}"')
        return True


if __name__ == "__main__":  # `python -m orders.db`: create DATABASE_URL's database if missing
    from orders.config import Settings

    url = Settings().database_url
    print(f"created {url}" if ensure_database(url) else f"database ready: {url}")
