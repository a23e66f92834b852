"""The operators' API (`X-API-Key`): actions on orders that the chain could not finish."""

import asyncio
import contextlib
import logging
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from kombu.connection import Connection
from sqlmodel import col, select

from orders import figures
from orders.api.auth import require_ops_key
from orders.api.dependencies import AuditDep, SessionDep, SettingsDep
from orders.api.pagination import newest_first
from orders.api.problems import Problem, not_found
from orders.api.routes.storefront import credit_note_pdf, invoice_pdf
from orders.db import run
from orders.lifecycle import NotRetryable, retry_failed
from orders.messages import QUEUES
from orders.models import (
    AuditLog,
    Cancellation,
    CreditNote,
    Invoice,
    Order,
    OrderEvent,
    OrderLine,
    OrderStatus,
    Payment,
    WebhookDelivery,
)
from orders.refunds import credit_note_text
from orders.states import STATUS_BEFORE

log = logging.getLogger(__name__)
router = APIRouter(prefix="/ops", tags=["ops"], dependencies=[Depends(require_ops_key)])


@router.post(
    "/orders/{order_id}/retry",
    status_code=202,
    responses={409: {"description": "Only a failed order can be retried"}},
)
async def retry_order(order_id: uuid.UUID, session: SessionDep, audit: AuditDep) -> dict[str, str]:
    """Resume a failed order from the step that failed."""
    try:
        step = await run(session, retry_failed, order_id)
    except NotRetryable as refused:
        raise Problem(
            409,
            "order-not-failed",
            "Only a failed order can be retried",
            f"Order {order_id} is {refused.status}.",
        ) from refused
    if step is None:
        raise not_found("order with this id")
    await session.commit()
    audit("order.retry_requested", order_id=order_id, detail={"step": step})
    return {"id": str(order_id), "status": STATUS_BEFORE[step], "resumed_from": step}


def queue_depths(broker_url: str) -> dict[str, int | None]:
    """Messages waiting per queue, asked of RabbitMQ with a passive declare (blocking: run it in
    a thread). None for a queue, or for all, when the broker cannot say."""
    depths: dict[str, int | None] = dict.fromkeys(QUEUES)
    if not broker_url.startswith("amqp"):
        return depths  # the embedded demo's file transport: no broker to ask
    try:
        with Connection(broker_url, connect_timeout=2) as connection:  # type: ignore[no-untyped-call]
            for name in QUEUES:
                channel = connection.channel()
                try:
                    depths[name] = channel.queue_declare(name, passive=True).message_count
                except Exception:
                    depths[name] = None
                finally:
                    with contextlib.suppress(Exception):
                        channel.close()
    except OSError:
        log.warning("broker unreachable for queue depths")
    return depths


@router.get("/summary")
async def summary(session: SessionDep, settings: SettingsDep) -> dict[str, Any]:
    """What the ops dashboard shows at the top. `stalled`: orders found stalled, and their step
    enqueued again, in the last 24 hours."""
    figures_ = await run(session, figures.summary)
    return figures_ | {"queue_depths": await asyncio.to_thread(queue_depths, settings.broker_url)}


@router.get("/orders")
async def list_orders(
    session: SessionDep,
    status: OrderStatus | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """Newest first; pass `next_cursor` back as `cursor` for the next page."""
    query = select(Order)
    if status is not None:
        query = query.where(Order.status == status)
    if since is not None:
        query = query.where(col(Order.created_at) >= since)
    if until is not None:
        query = query.where(col(Order.created_at) < until)
    page, next_cursor = await newest_first(session, query, Order, cursor, limit)
    return {"items": [_order_row(o) for o in page], "next_cursor": next_cursor}


def _order_row(order: Order) -> dict[str, Any]:
    return order.model_dump(
        mode="json", exclude={"access_token_hash", "version", "step", "step_attempts"}
    )


@router.get("/orders/{order_id}")
async def order_detail(order_id: uuid.UUID, session: SessionDep) -> dict[str, Any]:
    """Everything about one order, for support: lines, payment, timeline, invoice, webhooks."""
    order = await session.get(Order, order_id)
    if order is None:
        raise not_found("order with this id")
    lines = await session.exec(select(OrderLine).where(OrderLine.order_id == order_id))
    payment = (await session.exec(select(Payment).where(Payment.order_id == order_id))).first()
    timeline = await session.exec(
        select(OrderEvent).where(OrderEvent.order_id == order_id).order_by(col(OrderEvent.seq))
    )
    invoice = (
        await session.exec(
            select(Invoice.number, Invoice.sha256, Invoice.issued_at, Invoice.rendered_at).where(
                Invoice.order_id == order_id
            )
        )
    ).first()
    deliveries = await session.exec(
        select(WebhookDelivery)
        .join(OrderEvent, col(OrderEvent.id) == col(WebhookDelivery.event_id))
        .where(OrderEvent.order_id == order_id)
        .order_by(col(WebhookDelivery.created_at))
    )
    cancellations = await session.exec(
        select(Cancellation)
        .where(Cancellation.order_id == order_id)
        .order_by(col(Cancellation.seq))
    )
    notes = await session.exec(
        select(CreditNote.number, CreditNote.cancellation_id, CreditNote.rendered_at).where(
            CreditNote.order_id == order_id
        )
    )
    audit_rows = await session.exec(
        select(AuditLog).where(AuditLog.order_id == order_id).order_by(col(AuditLog.at))
    )
    return {
        "order": _order_row(order) | {"step": order.step, "step_attempts": order.step_attempts},
        "lines": [line.model_dump(mode="json", exclude={"id", "order_id"}) for line in lines],
        "payment": payment.model_dump(mode="json", exclude={"id", "order_id", "token_fingerprint"})
        if payment
        else None,
        "events": [e.model_dump(mode="json", exclude={"order_id"}) for e in timeline],
        "invoice": dict(zip(("number", "sha256", "issued_at", "rendered_at"), invoice, strict=True))
        if invoice
        else None,
        "webhook_deliveries": [
            d.model_dump(mode="json", exclude={"in_flight_until", "claim_id"}) for d in deliveries
        ],
        "cancellations": [
            c.model_dump(mode="json", exclude={"request_hash", "idempotency_key"})
            for c in cancellations
        ],
        "credit_notes": [
            {
                "number": credit_note_text(n),
                "cancellation_id": str(c),
                "rendered_at": r and r.isoformat(),
            }
            for n, c, r in notes
        ],
        "audit": [a.model_dump(mode="json") for a in audit_rows],
    }


@router.get(
    "/orders/{order_id}/invoice.pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}, 404: {"description": "Not rendered yet"}},
)
async def get_invoice_pdf(order_id: uuid.UUID, session: SessionDep) -> Response:
    """The order's invoice, for support (the storefront's link needs the order's token)."""
    return await invoice_pdf(session, order_id)


@router.get(
    "/orders/{order_id}/credit-notes/{number}.pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}, 404: {"description": "Not rendered yet"}},
)
async def get_credit_note_pdf(order_id: uuid.UUID, number: str, session: SessionDep) -> Response:
    return await credit_note_pdf(session, order_id, number)
