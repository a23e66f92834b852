"""The ASGI app: `uvicorn orders.main:app`."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI

from orders import idempotency, metrics, ops, webhook_ops
from orders.background import TaskRegistry
from orders.config import Settings, settings
from orders.context import configure_logging
from orders.db import make_engine, make_sessionmaker
from orders.limits import BodySizeLimit
from orders.observability import RequestObserver
from orders.payments import make_gateway
from orders.problems import install_problem_handlers
from orders.router import router

log = logging.getLogger(__name__)


async def purge_idempotency_keys_forever(app: FastAPI) -> None:
    """Keys are kept for the retention period, then deleted in the background of every API process."""
    s: Settings = app.state.settings
    policy = idempotency.IdempotencyPolicy.of(s)
    while True:
        await asyncio.sleep(s.idempotency_purge_interval_s)
        try:
            async with app.state.sessions() as session:
                purged = await idempotency.purge_expired(session, policy.retention)
            if purged:
                log.info("purged %d expired idempotency keys", purged)
        except Exception:
            log.exception("idempotency key purge failed; will retry")


def create_app(s: Settings = settings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(s)
        app.state.sessions = make_sessionmaker(engine)
        app.state.gateway = make_gateway(s)
        app.state.registry = TaskRegistry(s.background_max_in_flight)
        app.state.http = httpx.AsyncClient(timeout=httpx.Timeout(2.0, connect=1.0))
        purge = asyncio.create_task(purge_idempotency_keys_forever(app))
        try:
            yield
        finally:
            purge.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purge
            cancelled = await app.state.registry.drain(s.background_drain_timeout_s)
            if cancelled:
                log.warning("cancelled %d background tasks still running at shutdown", cancelled)
            await app.state.http.aclose()
            await app.state.gateway.aclose()
            await engine.dispose()

    app = FastAPI(
        title="Orders",
        summary="Checkout in milliseconds; fulfilment in the background.",
        lifespan=lifespan,
    )
    app.state.settings = s
    install_problem_handlers(app, s.unavailable_retry_after_s)
    app.add_middleware(BodySizeLimit, max_bytes=s.max_body_bytes)
    app.add_middleware(RequestObserver, budget_ms=s.request_budget_ms)  # outermost: times it all
    app.include_router(router)
    app.include_router(ops.router)
    app.include_router(webhook_ops.router)
    app.include_router(metrics.router)
    return app


configure_logging(settings.log_format)
app = create_app()
