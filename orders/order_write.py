"""The checkout's write, all or nothing: the order, its lines and payment, the `order.placed` event
with a webhook delivery for each endpoint that subscribed to it, the outbox message that starts
the chain, the audit row, and the answer stored for replays of the Idempotency-Key.

On PostgreSQL it is one statement, each insert a data-modifying CTE: a statement is atomic on its
own, so it runs on an autocommit connection, without BEGIN and COMMIT, in one round trip (the
order's number was drawn with the claim). SQLite has no data-modifying CTEs; there the same rows
go in one after the other in one transaction, the order first, numbered as it is inserted."""

from collections.abc import Callable
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    bindparam,
    column,
    false,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Session

from orders import context, events, idempotency
from orders.events import const
from orders.idempotency import Claimed, StoredResponse
from orders.messages import DeliverWebhooks, RunStep, enqueue, outbox_row
from orders.models import (
    AuditLog,
    IdempotencyKey,
    IdempotencyStatus,
    Order,
    OrderEvent,
    OrderLine,
    OrderStatus,
    Outbox,
    Payment,
    PaymentStatus,
    next_order_number,
    table,
    utcnow,
)
from orders.new_order import (
    PLACED,
    NewOrder,
    audit_row,
    line_rows,
    order_row,
    payment_row,
    view_of,
)
from orders.view import OrderView

ORDER_COLUMNS = [
    *("id", "number", "status", "customer_email", "customer_name", "shipping_name"),
    *("shipping_line1", "shipping_line2", "shipping_city", "shipping_postal_code"),
    *("shipping_country", "currency", "subtotal", "tax", "tax_rate_bps", "total"),
    *("access_token_hash", "version", "step_attempts", "created_at", "updated_at"),
]
LINE_COLUMNS = ["sku", "name", "quantity", "unit_price", "line_total"]
PAYMENT_COLUMNS = [
    *("order_id", "gateway", "authorization_id", "status", "amount", "currency"),
    *("token_fingerprint", "card_brand", "card_last4", "created_at", "updated_at"),
]
# What differs from one order to the next; the rest of the row is the statement's own.
ORDER_VALUES = [
    c
    for c in ORDER_COLUMNS
    if c not in ("id", "status", "version", "step_attempts") and not c.endswith("_at")
]
PAYMENT_VALUES = [
    c for c in PAYMENT_COLUMNS if c not in ("order_id", "status") and not c.endswith("_at")
]
Answer = Callable[[OrderView], StoredResponse]


def write_order(
    session: Session, claim: Claimed, new: NewOrder, key: str, answer: Answer
) -> tuple[OrderView, StoredResponse]:
    """Write the order and store `answer(order)` for `key`; the caller commits."""
    now = utcnow()
    if claim.number is None:  # SQLite: numbered by the insert, the rest after it
        number: int = session.exec(
            insert(table(Order))
            .values(order_row(claim.order_id, new, now, next_order_number("sqlite")))
            .returning(table(Order).c.number)
        ).scalar_one()
        order = view_of(claim.order_id, number, new, now)
        session.exec(insert(table(OrderLine)).values(line_rows(order)))
        session.exec(insert(table(Payment)).values(payment_row(order, new)))
        events.record(session, order.id, PLACED, {"order": order.snapshot()})
        enqueue(session, RunStep(order_id=order.id))
        session.exec(insert(table(AuditLog)).values(audit_row(order, now)))
        response = answer(order)
        idempotency.record_response(session, key, response)
        return order, response
    order = view_of(claim.order_id, claim.number, new, now)
    response = answer(order)
    session.connection().execute(_at_once(), _at_once_params(order, new, now, key, response))
    return order, response


def _at_once_params(
    order: OrderView, new: NewOrder, now: datetime, key: str, response: StoredResponse
) -> dict[str, Any]:
    row, payment = order_row(order.id, new, now, order.number), payment_row(order, new)
    params = {f"o_{c}": row[c] for c in ORDER_VALUES} | {
        f"p_{c}": payment[c] for c in PAYMENT_VALUES
    }
    webhooks = outbox_row(DeliverWebhooks(order_id=order.id, event_id=0), now)
    return params | {
        "lines": [{c: row[c] for c in LINE_COLUMNS} for row in line_rows(order)],
        "event_data": {"order": order.snapshot()},
        "now": now,
        "order_ref": order.id,
        "run_step": outbox_row(RunStep(order_id=order.id), now)["payload"],
        "audit_request_id": context.request_id.get(),
        "audit_detail": {"total": order.total},
        "deliver_webhooks": webhooks["payload"],
        "k_key": key,
        "k_status": response.status,
        "k_headers": response.headers,
        "k_body": response.body,
    }


@cache
def _at_once() -> Any:
    """PostgreSQL: the whole write as one statement, built once; every value is a parameter
    (the lines one JSON array), so SQLAlchemy compiles it once per process."""
    orders, lines, payments = table(Order), table(OrderLine), table(Payment)
    placed, outbox, keys, audit = (
        table(OrderEvent),
        table(Outbox),
        table(IdempotencyKey),
        table(AuditLog),
    )
    order_id, now = (
        bindparam("order_ref", type_=orders.c.id.type),
        bindparam("now", type_=orders.c.created_at.type),
    )
    event = (
        insert(placed)
        .values(
            order_id=order_id,
            seq=const(1),
            type=const(PLACED),
            data=bindparam("event_data", type_=JSONB),
            occurred_at=now,
        )
        .returning(placed.c.id)
        .cte("placed")
    )
    line = (
        func.jsonb_to_recordset(bindparam("lines", type_=JSONB))
        .table_valued(*(column(c.name, c.type) for c in lines.c if c.name in LINE_COLUMNS))
        .render_derived(name="line", with_types=True)
    )
    writes = [
        insert(orders).values(
            {c: bindparam(f"o_{c}", type_=orders.c[c].type) for c in ORDER_VALUES}
            | {"id": order_id, "created_at": now, "updated_at": now}
            | {"status": const(OrderStatus.PENDING), "version": const(1)}
            | {"step_attempts": const(0), "ships": false()}  # decided as its stock is reserved
        ),
        insert(lines).from_select(
            ["order_id", *LINE_COLUMNS], select(order_id, *(line.c[c] for c in LINE_COLUMNS))
        ),
        insert(payments).values(
            {c: bindparam(f"p_{c}", type_=payments.c[c].type) for c in PAYMENT_VALUES}
            | {"order_id": order_id, "created_at": now, "updated_at": now}
            | {"status": const(PaymentStatus.AUTHORIZED)}
        ),
        *events.fan_out(
            event,
            order_id=order_id,
            type_=const(PLACED),
            types=const(f'["{PLACED}"]'),
            message=bindparam("deliver_webhooks", type_=JSONB),
            now=now,
        ),
        insert(audit).values(
            at=now,
            action=const(PLACED),
            actor=const("storefront"),
            request_id=bindparam("audit_request_id", type_=audit.c.request_id.type),
            order_id=order_id,
            detail=bindparam("audit_detail", type_=JSONB),
        ),
        insert(outbox).values(
            kind=const(RunStep.kind),
            order_id=order_id,
            payload=bindparam("run_step", type_=JSONB),
            created_at=now,
        ),
    ]
    statement = (
        update(keys)
        .where(keys.c.key == bindparam("k_key"))
        .values(
            status=const(IdempotencyStatus.COMPLETED),
            response_status=bindparam("k_status"),
            response_headers=bindparam("k_headers", type_=keys.c.response_headers.type),
            response_body=bindparam("k_body", type_=keys.c.response_body.type),
        )
        .add_cte(event)
    )
    for i, write in enumerate(writes):
        statement = statement.add_cte(write.cte(f"w{i}"))
    return statement
