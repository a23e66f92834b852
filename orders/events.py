"""Recording an order event: the timeline row and, in the same transaction, one webhook delivery
per endpoint that subscribed to its type, with an outbox message that gets them sent."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, literal
from sqlalchemy import select as sql_select
from sqlmodel import Session, col, select

from orders.messages import DeliverWebhooks, enqueue
from orders.models import (
    DeliveryStatus,
    OrderEvent,
    WebhookDelivery,
    WebhookEndpoint,
    table,
    utcnow,
)


def record(session: Session, order_id: uuid.UUID, type_: str, data: dict[str, Any]) -> int:
    """Append the event to the order's timeline, in the caller's transaction; returns its id."""
    now = utcnow()
    event_id: int = session.exec(_event_insert(order_id, type_, data, now)).scalar_one()
    _fan_out(session, event_id, order_id, type_, now)
    return event_id


def record_shop_event(session: Session, type_: str, data: dict[str, Any]) -> int:
    """An event of the shop, not of an order (`catalog.imported`): no timeline, only webhooks."""
    now = utcnow()
    values = {"order_id": None, "seq": None, "type": type_, "data": data, "occurred_at": now}
    events = table(OrderEvent)
    event_id: int = session.exec(insert(events).values(values).returning(events.c.id)).scalar_one()
    _fan_out(session, event_id, None, type_, now)
    return event_id


def _fan_out(
    session: Session, event_id: int, order_id: uuid.UUID | None, type_: str, now: datetime
) -> None:
    """A delivery per enabled endpoint subscribed to the type, and the message that sends them."""
    endpoints = session.exec(
        select(col(WebhookEndpoint.id), col(WebhookEndpoint.event_types)).where(
            col(WebhookEndpoint.enabled).is_(True)
        )
    ).all()
    subscribed = [endpoint_id for endpoint_id, types in endpoints if type_ in types]
    if subscribed:
        rows = [new_delivery(event_id, endpoint_id, type_, now) for endpoint_id in subscribed]
        session.exec(insert(table(WebhookDelivery)).values(rows))
        enqueue(session, DeliverWebhooks(event_id=event_id, order_id=order_id))


def new_delivery(
    event_id: int, endpoint_id: uuid.UUID, event_type: str, now: datetime
) -> dict[str, Any]:
    """A delivery row, due at once."""
    return {
        "id": uuid.uuid4(),
        "event_id": event_id,
        "endpoint_id": endpoint_id,
        "event_type": event_type,
        "status": DeliveryStatus.PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


def _event_insert(order_id: uuid.UUID, type_: str, data: dict[str, Any], now: datetime) -> Any:
    """seq = last + 1. Run it holding the order's row lock; the unique (order_id, seq) catches
    anyone who does not."""
    events = table(OrderEvent)
    next_seq = (
        sql_select(func.coalesce(func.max(events.c.seq), 0) + 1)
        .where(events.c.order_id == order_id)
        .scalar_subquery()
    )
    return (
        insert(events)
        .from_select(
            ["order_id", "seq", "type", "data", "occurred_at"],
            sql_select(
                literal(order_id, events.c.order_id.type),
                next_seq,
                literal(type_),
                literal(data, events.c.data.type),
                literal(now, events.c.occurred_at.type),
            ),
        )
        .returning(events.c.id)
    )
