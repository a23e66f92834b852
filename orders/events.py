"""Recording an order event: the timeline row and, in the same transaction, one webhook delivery
per endpoint that subscribed to its type, with an outbox message that gets them sent. On
PostgreSQL the three are one statement of data-modifying CTEs (one round trip, as the checkout's
write); on SQLite, which has none, they go one after the other."""

import uuid
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import CTE, Insert, and_, bindparam, exists, func, insert, literal_column
from sqlalchemy import select as sql_select
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Session, col, select

from orders.messages import DeliverWebhooks, enqueue, outbox_row
from orders.models import (
    DeliveryStatus,
    OrderEvent,
    Outbox,
    WebhookDelivery,
    WebhookEndpoint,
    table,
    utcnow,
)

DELIVERY_COLUMNS = [
    *("id", "event_id", "endpoint_id", "event_type"),
    *("status", "attempts", "next_attempt_at", "created_at"),
]


def record(session: Session, order_id: uuid.UUID, type_: str, data: dict[str, Any]) -> int:
    """Append the event to the order's timeline, in the caller's transaction; returns its id."""
    now = utcnow()
    params = _params(order_id, type_, data, now)
    if session.get_bind().dialect.name == "postgresql":
        recorded: int = session.exec(_at_once(), params=params).scalar_one()
        return recorded
    event_id: int = session.exec(_event_insert(), params=params).scalar_one()
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


@cache
def _bind() -> dict[str, Any]:
    """The parameters of `record`'s statements (`_params` gives their values), made once so that
    `_event_insert` and `_at_once` name and type them alike."""
    events = table(OrderEvent)
    return {
        "order_id": bindparam("ev_order_id", type_=events.c.order_id.type),
        "type": bindparam("ev_type", type_=events.c.type.type),
        "types": bindparam("ev_types", type_=JSONB),
        "data": bindparam("ev_data", type_=events.c.data.type),
        "now": bindparam("ev_now", type_=events.c.occurred_at.type),
        "message": bindparam("ev_message", type_=JSONB),
    }


@cache
def _event_insert() -> Any:
    """The event, seq = last + 1; built once. Run it holding the order's row lock; the unique
    (order_id, seq) catches anyone who does not."""
    events, bind = table(OrderEvent), _bind()
    next_seq = (
        sql_select(func.coalesce(func.max(events.c.seq), 0) + 1)
        .where(events.c.order_id == bind["order_id"])
        .scalar_subquery()
    )
    values = sql_select(bind["order_id"], next_seq, bind["type"], bind["data"], bind["now"])
    return (
        insert(events)
        .from_select(["order_id", "seq", "type", "data", "occurred_at"], values)
        .returning(events.c.id)
    )


def _params(order_id: uuid.UUID, type_: str, data: dict[str, Any], now: datetime) -> dict[str, Any]:
    message = outbox_row(DeliverWebhooks(event_id=0, order_id=order_id), now)
    return {
        "ev_order_id": order_id,
        "ev_type": type_,
        "ev_types": [type_],
        "ev_data": data,
        "ev_now": now,
        "ev_message": message["payload"],
    }


@cache
def _at_once() -> Any:
    """PostgreSQL: `record` in one statement. The event; a delivery for each enabled endpoint
    whose types hold this one; the message that sends them, if there is any. The event's id.
    Built once, every value a parameter, so that SQLAlchemy compiles it once per process (built
    anew for each event it cost more CPU than the round trip it saves)."""
    bind = _bind()
    event = _event_insert().cte("event")
    deliveries, send = fan_out(
        event,
        order_id=bind["order_id"],
        type_=bind["type"],
        types=bind["types"],
        message=bind["message"],
        now=bind["now"],
    )
    return (
        sql_select(event.c.id)
        .add_cte(event)
        .add_cte(deliveries.cte("deliveries"))
        .add_cte(send.cte("send"))
    )


def fan_out(
    event: CTE, *, order_id: Any, type_: Any, types: Any, message: Any, now: Any
) -> tuple[Insert, Insert]:
    """`_fan_out` as two INSERTs to run as CTEs beside the `event` CTE that inserted the event
    (returning its id): a delivery for each enabled endpoint whose types contain `types` (a JSON
    array of the event's type), and the DeliverWebhooks `message` (its payload, to which the
    event's id is added) if there is any. The arguments are SQL expressions: parameters, or
    constants (`const`) where the caller knows them (the checkout's `order.placed`)."""
    endpoints, outbox = table(WebhookEndpoint), table(Outbox)
    subscribed = and_(endpoints.c.enabled.is_(True), endpoints.c.event_types.op("@>")(types))
    deliveries = insert(table(WebhookDelivery)).from_select(
        DELIVERY_COLUMNS,
        sql_select(
            func.gen_random_uuid(),
            event.c.id,
            endpoints.c.id,
            type_,
            const(DeliveryStatus.PENDING),
            const(0),
            now,
            now,
        ).select_from(event.join(endpoints, subscribed)),
    )
    send = insert(outbox).from_select(
        ["kind", "order_id", "payload", "created_at"],
        sql_select(
            const(DeliverWebhooks.kind),
            order_id,
            message.op("||")(func.jsonb_build_object(const("event_id"), event.c.id)),
            now,
        ).where(exists().where(subscribed)),
    )
    return deliveries, send


def const(value: str | int) -> Any:
    """A constant written into the SQL: fewer parameters keep the statement within psycopg's
    cache of converted queries (50 parameters at most). Only for the module's own constants."""
    if isinstance(value, int):
        return literal_column(str(value))
    assert "'" not in value
    return literal_column(f"'{value}'")
