"""The shop's figures, read from PostgreSQL: what the ops summary shows and what `/metrics`
exports, computed in one place."""

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from orders.lifecycle import STALLED
from orders.models import (
    IMPORT_ENDED,
    DeliveryStatus,
    ImportJob,
    Order,
    OrderEvent,
    OrderStatus,
    Outbox,
    WebhookDelivery,
    WebhookEndpoint,
    utcnow,
)
from orders.stats import percentile
from orders.stock_import import Progress

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


HOUR = timedelta(hours=1)
STEP_EVENTS = ("order.reserved", "order.paid", "order.invoiced", "order.completed")
SAMPLE = 2_000  # step times: the latest this many events of each type, at most


def per_minute(session: Session, since: timedelta = HOUR) -> dict[str, list[Any]]:
    """Orders placed and completed in each minute of the last `since`, oldest first (minutes
    without any are 0), for the dashboard's chart."""
    now = utcnow().replace(second=0, microsecond=0)
    minutes = [now - timedelta(minutes=m) for m in range(int(since.total_seconds() // 60), -1, -1)]
    start = minutes[0]

    def counts(column: Any, *where: Any) -> dict[datetime, int]:
        bucket = _minute(session, column)
        rows = session.exec(
            select(bucket, func.count()).where(column >= start, *where).group_by(bucket)
        ).all()
        return {_as_minute(at): int(n) for at, n in rows}

    placed = counts(col(Order.created_at))
    completed = counts(col(OrderEvent.occurred_at), OrderEvent.type == "order.completed")
    return {
        "minutes": [m.isoformat() for m in minutes],
        "placed": [placed.get(m, 0) for m in minutes],
        "completed": [completed.get(m, 0) for m in minutes],
    }


def _minute(session: Session, column: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return func.date_trunc("minute", column)
    return func.strftime("%Y-%m-%dT%H:%M:00+00:00", column)


def _as_minute(value: datetime | str) -> datetime:
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return at.astimezone(UTC).replace(second=0, microsecond=0)


def step_times(session: Session, since: timedelta = HOUR) -> dict[str, dict[str, float | None]]:
    """From placement to each step's event, p50 and p95 in ms, over the last `since` (the latest
    SAMPLE events of each type at most)."""
    times: dict[str, dict[str, float | None]] = {}
    for event_type in STEP_EVENTS:
        rows = session.exec(
            select(OrderEvent.occurred_at, Order.created_at)
            .join(Order, col(Order.id) == col(OrderEvent.order_id))
            .where(OrderEvent.type == event_type, col(OrderEvent.occurred_at) >= utcnow() - since)
            .order_by(col(OrderEvent.occurred_at).desc())
            .limit(SAMPLE)
        ).all()
        ms = [(at - placed).total_seconds() * 1000 for at, placed in rows]
        times[event_type] = {"p50": percentile(ms, 50), "p95": percentile(ms, 95)}
    return times


def failed_orders(session: Session, limit: int = 20) -> list[dict[str, Any]]:
    """The latest failed orders, with the step that failed and why: what an operator retries."""
    rows = session.exec(
        select(Order)
        .where(Order.status == OrderStatus.FAILED)
        .order_by(col(Order.updated_at).desc())
        .limit(limit)
    ).all()
    return [
        {
            "id": str(o.id),
            "number": o.number,
            "step": o.failed_step,
            "reason": o.failure_reason,
            "failed_at": o.updated_at.isoformat(),
        }
        for o in rows
    ]


def endpoint_health(session: Session, since: timedelta = DAY) -> list[dict[str, Any]]:
    """Each webhook endpoint: deliveries by status over `since`, its success rate, whether it is
    disabled and why, the last error (of a failed delivery or of one still being retried), and
    its failed deliveries (latest 5), to redeliver."""
    counted = session.exec(
        select(WebhookDelivery.endpoint_id, WebhookDelivery.status, func.count())
        .where(col(WebhookDelivery.created_at) >= utcnow() - since)
        .group_by(col(WebhookDelivery.endpoint_id), col(WebhookDelivery.status))
    ).all()
    by_endpoint: dict[Any, dict[str, int]] = {}
    for endpoint_id, status, n in counted:
        by_endpoint.setdefault(endpoint_id, {})[str(status)] = int(n)
    health = []
    for endpoint in session.exec(select(WebhookEndpoint).order_by(col(WebhookEndpoint.created_at))):
        statuses = by_endpoint.get(endpoint.id, {})
        settled = statuses.get("delivered", 0) + statuses.get("failed", 0)
        failed = session.exec(
            select(WebhookDelivery)
            .where(
                WebhookDelivery.endpoint_id == endpoint.id,
                WebhookDelivery.status == DeliveryStatus.FAILED,
            )
            .order_by(col(WebhookDelivery.created_at).desc())
            .limit(5)
        ).all()
        health.append(
            {
                "id": str(endpoint.id),
                "url": endpoint.url,
                "enabled": endpoint.enabled,
                "disabled_reason": endpoint.disabled_reason,
                "by_status": statuses,
                "success_rate": statuses.get("delivered", 0) / settled if settled else None,
                "last_error": session.exec(
                    select(WebhookDelivery.last_error)
                    .where(
                        WebhookDelivery.endpoint_id == endpoint.id,
                        col(WebhookDelivery.last_error).is_not(None),
                    )
                    .order_by(col(WebhookDelivery.created_at).desc())
                    .limit(1)
                ).first(),
                "failed": [
                    {"id": str(d.id), "event_type": d.event_type, "error": d.last_error}
                    for d in failed
                ],
            }
        )
    return health


def recent_imports(session: Session, limit: int = 5) -> list[dict[str, Any]]:
    """The latest stock imports and how far each has come."""
    jobs = session.exec(
        select(ImportJob).order_by(col(ImportJob.created_at).desc()).limit(limit)
    ).all()
    now = utcnow()
    shown = []
    for job in jobs:
        progress = Progress.of(job, now)
        shown.append(
            {
                "id": str(job.id),
                "status": job.status.value,
                "percent": progress.percent,
                "rows_done": job.rows_done,
                "rows_failed": job.rows_failed,
                "rows_per_s": progress.rows_per_s,
                "eta_s": None if progress.eta_s is None else round(progress.eta_s),
                "mb": round(job.bytes_total / 1e6, 1),
                "created_at": job.created_at.isoformat(),
                "cancellable": job.status not in IMPORT_ENDED and not job.cancel_requested_at,
            }
        )
    return shown


def dashboard(session: Session) -> dict[str, Any]:
    """Everything the ops dashboard shows that PostgreSQL knows (the broker's queue depths are
    asked of RabbitMQ by the API)."""
    return {
        "orders_by_status": orders_by_status(session),
        "per_minute": per_minute(session),
        "step_times_ms": step_times(session),
        "outbox_lag_s": round(outbox_lag_s(session), 1),
        "stalled": stalled_count(session),
        "failed_orders": failed_orders(session),
        "webhook_endpoints": endpoint_health(session),
        "imports": recent_imports(session),
    }
