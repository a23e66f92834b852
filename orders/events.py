"""Recording an order event: the timeline row and, in the same transaction, one webhook delivery
per endpoint that subscribed to its type, with an outbox row that gets them sent."""

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, literal
from sqlalchemy import select as sql_select
from sqlmodel import Session, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from orders.context import request_id
from orders.models import (
    DeliveryStatus,
    OrderEvent,
    Outbox,
    WebhookDelivery,
    WebhookEndpoint,
    table,
    utcnow,
)
from orders.states import DELIVER_WEBHOOKS

LineValues = tuple[str, str, int, int, int]  # sku, name, quantity, unit price, line total


def order_snapshot(
    *,
    order_id: uuid.UUID,
    number: int,
    status: str,
    currency: str,
    subtotal: int,
    tax: int,
    total: int,
    customer_email: str,
    customer_name: str,
    lines: Sequence[LineValues],
    invoice_url: str | None = None,
) -> dict[str, Any]:
    """What a webhook receiver learns about the order at the moment of the event."""
    snapshot: dict[str, Any] = {
        "id": str(order_id),
        "number": number,
        "status": status,
        "currency": currency,
        "subtotal": subtotal,
        "tax": tax,
        "total": total,
        "customer": {"email": customer_email, "name": customer_name},
        "lines": [
            {"sku": s, "name": n, "quantity": q, "unit_price": u, "line_total": t}
            for s, n, q, u, t in lines
        ],
    }
    if invoice_url:
        snapshot["invoice_url"] = invoice_url
    return snapshot


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


ENDPOINTS = select(col(WebhookEndpoint.id), col(WebhookEndpoint.event_types)).where(
    col(WebhookEndpoint.enabled).is_(True)
)


def _deliveries(
    order_id: uuid.UUID,
    event_id: int,
    type_: str,
    endpoints: Sequence[tuple[uuid.UUID, list[str]]],
    now: datetime,
) -> list[Any]:
    subscribed = [endpoint_id for endpoint_id, types in endpoints if type_ in types]
    if not subscribed:
        return []
    rows = [
        {
            "id": uuid.uuid4(),
            "event_id": event_id,
            "endpoint_id": endpoint_id,
            "event_type": type_,
            "status": DeliveryStatus.PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for endpoint_id in subscribed
    ]
    payload = {"event_id": event_id, "order_id": str(order_id), "request_id": request_id.get()}
    outbox = {"kind": DELIVER_WEBHOOKS, "payload": payload, "created_at": now}
    return [insert(table(WebhookDelivery)).values(rows), insert(table(Outbox)).values(outbox)]


async def record(
    session: AsyncSession, order_id: uuid.UUID, type_: str, data: dict[str, Any]
) -> int:
    now = utcnow()
    event_id: int = (await session.exec(_event_insert(order_id, type_, data, now))).scalar_one()
    endpoints = (await session.exec(ENDPOINTS)).all()
    for statement in _deliveries(order_id, event_id, type_, endpoints, now):
        await session.exec(statement)
    return event_id


def record_sync(session: Session, order_id: uuid.UUID, type_: str, data: dict[str, Any]) -> int:
    now = utcnow()
    event_id: int = session.exec(_event_insert(order_id, type_, data, now)).scalar_one()
    endpoints = session.exec(ENDPOINTS).all()
    for statement in _deliveries(order_id, event_id, type_, endpoints, now):
        session.exec(statement)
    return event_id
