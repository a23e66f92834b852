"""`GET /metrics` for Prometheus: the API's own counters, plus gauges read from PostgreSQL at
scrape time (orders by status, outbox lag, webhook deliveries, stalled orders), which every API
process can answer alike. Workers export their task metrics themselves (fulfillment.observability)."""

from datetime import timedelta

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest
from sqlalchemy import func
from sqlmodel import col, select

from orders.api.dependencies import SessionDep
from orders.db import run
from orders.lifecycle import stalled_count
from orders.models import Order, Outbox, WebhookDelivery, utcnow

ORDERS = Gauge("orders_by_status", "Orders per status", ["status"])
OUTBOX_LAG = Gauge("orders_outbox_lag_seconds", "Age of the oldest unpublished outbox row")
DELIVERIES = Gauge("orders_webhook_deliveries", "Webhook deliveries per status", ["status"])
STALLED = Gauge(
    "orders_stalled_last_24h", "Orders found stalled (their step enqueued again) in the last day"
)

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics(session: SessionDep) -> Response:
    for status, n in await session.exec(
        select(Order.status, func.count()).group_by(col(Order.status))
    ):
        ORDERS.labels(status).set(n)
    oldest = (
        await session.exec(
            select(func.min(Outbox.created_at)).where(col(Outbox.published_at).is_(None))
        )
    ).one()
    OUTBOX_LAG.set((utcnow() - oldest).total_seconds() if oldest else 0.0)
    for status, n in await session.exec(
        select(WebhookDelivery.status, func.count()).group_by(col(WebhookDelivery.status))
    ):
        DELIVERIES.labels(status).set(n)
    STALLED.set(await run(session, stalled_count, timedelta(days=1)))
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
