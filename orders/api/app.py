"""The app factory: routes, middleware, problem handlers, and what lives as long as the process
(the database pool, the gateway client, the background registry, the resize pool)."""

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import os
import re
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from wsgiref.simple_server import WSGIServer

import aiohttp
from anyio import to_thread
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry, start_http_server
from sqlalchemy.exc import SQLAlchemyError

from orders import idempotency, stock_import
from orders.api import metrics, spool, telemetry
from orders.api.auth import OPEN_OPS_PATHS, OPS_FORMS, OPS_PAGES, OPS_PATHS
from orders.api.background import TaskRegistry
from orders.api.config import ApiSettings
from orders.api.gates import BodyGate, OpsGate
from orders.api.live import Hub
from orders.api.middleware import Deadline, RequestObserver
from orders.api.openapi import problem_documenter
from orders.api.ops_session import Sessions, Throttle
from orders.api.problems import install_problem_handlers
from orders.api.routes import (
    cancellations,
    dashboard,
    health,
    images,
    imports,
    ops,
    storefront,
    streams,
    webhooks,
)
from orders.card_authorizer import make_authorizer
from orders.catalog import PriceBook
from orders.db import (
    make_async_engines,
    make_async_sessionmaker,
    make_engine,
    make_sessionmaker,
    run,
)

log = logging.getLogger(__name__)
IMAGE_UPLOAD = re.compile(r"^/products/[^/]+/images$")
STREAMED = re.compile(r"^/ops/imports$")  # read as it arrives, never buffered


async def housekeeping_forever(app: FastAPI) -> None:
    """In the background of every API process: idempotency keys deleted after their retention
    period, and stock files left in the spool folder after theirs."""
    s: ApiSettings = app.state.settings
    retention = s.idempotency_policy().retention
    while True:
        await asyncio.sleep(s.idempotency_purge_interval_s)
        try:
            async with app.state.sessions() as session:
                purged = await run(session, idempotency.purge_expired, retention)
                in_use = await run(session, stock_import.spooled_files_in_use)
            if purged:
                log.info("purged %d expired idempotency keys", purged)
            folder, kept_s = Path(s.import_spool_dir), s.import_spool_retention_hours * 3600
            if swept := await to_thread.run_sync(spool.sweep, folder, kept_s, in_use):
                log.info("swept %d stock files left in %s: %s", len(swept), folder, swept)
        except Exception:
            log.exception("housekeeping failed; will retry")


def create_app(s: ApiSettings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Named with the process id, like the stream listener: pg_stat_activity tells workers apart.
        engine, autocommit_engine = make_async_engines(s, f"orders-api:{os.getpid()}")
        app.state.sessions = make_async_sessionmaker(engine)
        app.state.autocommit_sessions = make_async_sessionmaker(autocommit_engine)
        figures_engine = make_engine(s.model_copy(update={"db_pool_size": 1}), "orders-metrics")
        app.state.metrics = metrics.registry(make_sessionmaker(figures_engine))
        exporter = serve_metrics(s, app.state.metrics)
        app.state.gateway = make_authorizer(s)
        app.state.registry = TaskRegistry(s.background_max_in_flight)
        # The analytics ping's: aiohttp, as the card authorizer's (orders.card_authorizer).
        app.state.http = aiohttp.ClientSession(timeout=telemetry.TIMEOUT)
        app.state.catalog = PriceBook()
        app.state.hub = Hub(s, s.stream_poll_s, app.state.catalog)
        app.state.hub.start()
        # CPU-bound resizing in other processes; "spawn" so no child inherits the event loop.
        app.state.image_pool = ProcessPoolExecutor(
            s.image_workers, mp_context=multiprocessing.get_context("spawn")
        )
        try:
            if interrupted := await images.mark_interrupted(app.state.sessions):
                log.warning(
                    "%d product images were left processing; marked interrupted", interrupted
                )
        except SQLAlchemyError:  # the API starts without its database and answers 503 meanwhile
            log.exception("could not mark interrupted product images")
        housekeeping = asyncio.create_task(housekeeping_forever(app))
        # Everything made so far (modules, the app, its routes and schemas) lives as long as the
        # process: frozen out of the collector's way, so a full collection scans only what
        # requests make; and collections less often (GC_GEN0_THRESHOLD, CPython's default 700).
        # Measured with 1,000 open streams: full collections had paused the event loop for
        # 120-256 ms each, checkout p99 +180 to +470 %; with both, -28 to +16 % (README).
        gc.freeze()
        gc.set_threshold(s.gc_gen0_threshold, *gc.get_threshold()[1:])
        try:
            yield
        finally:
            housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await housekeeping
            await app.state.hub.stop()
            cancelled = await app.state.registry.drain(s.background_drain_timeout_s)
            if cancelled:
                log.warning("cancelled %d background tasks still running at shutdown", cancelled)
            app.state.image_pool.shutdown(wait=False, cancel_futures=True)
            await app.state.http.close()
            await app.state.gateway.aclose()
            for pool in {engine, autocommit_engine}:  # one engine on SQLite
                await pool.dispose()
            if exporter is not None:
                exporter.shutdown()
            figures_engine.dispose()

    app = FastAPI(
        title="Orders",
        summary="Checkout in milliseconds; fulfilment in the background.",
        lifespan=lifespan,
    )
    app.state.settings = s
    app.openapi = problem_documenter(app)  # type: ignore[method-assign]
    install_problem_handlers(app, s.unavailable_retry_after_s)
    app.add_middleware(
        Deadline,
        deadline_s=s.request_deadline_s,
        retry_after_s=s.unavailable_retry_after_s,
        streamed=STREAMED,
    )
    app.add_middleware(
        BodyGate,
        max_bytes=s.max_body_bytes,
        uploads=IMAGE_UPLOAD,
        upload_max_bytes=s.max_image_bytes,
        forms=re.compile(OPS_FORMS),
        streamed=STREAMED,
    )
    app.state.ops_sessions = Sessions(s.secret_key, s.ops_session_hours * 3600)
    app.state.login_throttle = Throttle()
    app.state.dashboard_figures = dashboard.FiguresCache()
    app.add_middleware(
        OpsGate,
        key=s.ops_api_key,
        paths=re.compile(OPS_PATHS),
        sessions=app.state.ops_sessions,
        open_paths=re.compile(OPEN_OPS_PATHS),
        pages=re.compile(OPS_PAGES),
    )
    app.add_middleware(
        RequestObserver, budget_ms=s.request_budget_ms, streamed=STREAMED
    )  # outermost: times it all
    routers = (
        storefront,
        streams,
        ops,
        cancellations,
        webhooks,
        metrics,
        images,
        imports,
        health,
        dashboard,
    )
    for module in routers:
        app.include_router(module.router)
    app.mount("/ops/static", StaticFiles(directory=dashboard.WEB / "static"), name="ops-static")
    return app


def serve_metrics(s: ApiSettings, registry: CollectorRegistry) -> WSGIServer | None:
    """METRICS_PORT: the first process to bind it serves every worker's metrics (with
    PROMETHEUS_MULTIPROC_DIR); the others find it taken and leave it to that one."""
    if not s.metrics_port:
        return None
    try:
        server, _ = start_http_server(s.metrics_port, addr=s.metrics_host, registry=registry)
    except OSError:
        log.info("metrics port %d served by another process", s.metrics_port)
        return None
    return server
