"""The shop's figures, read from PostgreSQL: what the ops summary shows and what `/metrics`
exports, computed in one place."""

from datetime import timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from orders.lifecycle import STALLED
from orders.models import Order, OrderEvent, Outbox, WebhookDelivery, utcnow
from orders.stats import percentile

DAY = timedelta(days=1)


def orders_by_status(session: Session, since: timedelta | None = None) -> dict[str, int]:
    query = select(Order.status, func.count()).group_by(col(Order.status))
    if since is not None:
        query = query.where(col(Order.created_at) >= utcnow() - since)
    return {str(status): int(n) for status, n in session.exec(query)}


def outbox_lag_s(session: Session) -> float:
    """Age of the oldest message not yet published: 0 when there is none."""
    oldest = session.exec(
        select(func.min(Outbox.created_at)).where(col(Outbox.published_at).is_(None))
    ).one()
    return (utcnow() - oldest).total_seconds() if oldest else 0.0


def deliveries_by_status(session: Session, since: timedelta | None = None) -> dict[str, int]:
    query = select(WebhookDelivery.status, func.count()).group_by(col(WebhookDelivery.status))
    if since is not None:
        query = query.where(col(WebhookDelivery.created_at) >= utcnow() - since)
    return {str(status): int(n) for status, n in session.exec(query)}


def stalled_count(session: Session, since: timedelta = DAY) -> int:
    """How many times orders were found stalled (and requeued) in the last `since`."""
    found = session.exec(
        select(func.count()).where(
            OrderEvent.type == STALLED, col(OrderEvent.occurred_at) >= utcnow() - since
        )
    ).one()
    return int(found)


def summary(session: Session) -> dict[str, Any]:
    """What the ops dashboard shows at the top, but the broker's queue depths."""
    by_status = orders_by_status(session)
    completed = session.exec(
        select(OrderEvent.occurred_at, Order.created_at)
        .join(Order, col(Order.id) == col(OrderEvent.order_id))
        .where(OrderEvent.type == "order.completed", col(OrderEvent.occurred_at) >= utcnow() - DAY)
    ).all()
    durations = [(done - placed).total_seconds() * 1000 for done, placed in completed]
    deliveries = deliveries_by_status(session, since=DAY)
    settled = deliveries.get("delivered", 0) + deliveries.get("failed", 0)
    return {
        "orders_by_status": by_status,
        "orders_by_status_last_hour": orders_by_status(session, since=timedelta(hours=1)),
        "placed_to_completed_ms_last_24h": {
            "count": len(durations),
            "p50": percentile(durations, 50),
            "p95": percentile(durations, 95),
        },
        "outbox_lag_s": outbox_lag_s(session),
        "failed_orders": by_status.get("failed", 0),
        "stalled": stalled_count(session),
        "webhooks_last_24h": {
            "by_status": deliveries,
            "success_rate": deliveries.get("delivered", 0) / settled if settled else None,
        },
    }
