"""Prometheus for the API: each process's own counters and histograms, and the shop's figures
read from PostgreSQL when scraped (orders by status, outbox lag, webhook deliveries, stalled
orders), which any process answers alike. Served at `GET /metrics` behind the operators' key,
and with METRICS_PORT also without it, on a port of its own for an internal network (compose
does this). With several uvicorn workers set PROMETHEUS_MULTIPROC_DIR: every worker's counters
are then summed, whichever one answers. Workers export their task metrics themselves
(fulfillment.observability)."""

import asyncio
import os
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from orders import figures
from orders.api.auth import require_ops_key

router = APIRouter()


class ShopFigures(Collector):
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def collect(self) -> Iterator[Metric]:
        with self.sessions() as session:
            by_status = figures.orders_by_status(session)
            lag = figures.outbox_lag_s(session)
            deliveries = figures.deliveries_by_status(session)
            stalled = figures.stalled_count(session)
        orders = GaugeMetricFamily("orders_by_status", "Orders per status", labels=["status"])
        for status, n in by_status.items():
            orders.add_metric([status], n)
        yield orders
        yield GaugeMetricFamily(
            "orders_outbox_lag_seconds", "Age of the oldest unpublished outbox row", value=lag
        )
        sent = GaugeMetricFamily(
            "orders_webhook_deliveries", "Webhook deliveries per status", labels=["status"]
        )
        for status, n in deliveries.items():
            sent.add_metric([status], n)
        yield sent
        yield GaugeMetricFamily(
            "orders_stalled_last_24h",
            "Orders found stalled (what they waited for enqueued again) in the last day",
            value=stalled,
        )


class ThisProcess(Collector):
    """The metrics of this process alone (no PROMETHEUS_MULTIPROC_DIR: one process)."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def registry(sessions: sessionmaker[Session]) -> CollectorRegistry:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(ThisProcess())
    registry.register(ShopFigures(sessions))
    return registry


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, _: Annotated[str, Depends(require_ops_key)]) -> Response:
    exposition = await asyncio.to_thread(generate_latest, request.app.state.metrics)
    return Response(exposition, media_type=CONTENT_TYPE_LATEST)
