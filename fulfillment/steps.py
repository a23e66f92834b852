"""The fulfilment steps as plain functions: load by id, skip what is done, do it, commit status and
event together. Celery tasks (fulfillment.tasks) are thin wrappers; tests call these directly too.

Each step first counts its delivery in a short transaction of its own, and a delivery that ends in
a handled way (success, a scheduled retry) clears the count; so the count is of deliveries that
crashed their worker, and a message that does so every time is recognised after
`step_max_deliveries` and fails its order instead of looping forever. Gateway calls happen outside any transaction, under idempotency keys derived
from the order, so a redelivered step repeats the call without repeating its effect.
"""

import hashlib
import logging
import os
import signal
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import insert, update
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, select

from fulfillment.config import Settings
from fulfillment.gateway import CaptureDeclined, CardGateway
from fulfillment.inventory import release_stock, reserve_stock
from fulfillment.invoices import (
    InvoiceDocument,
    InvoiceLine,
    ShopDetails,
    render_invoice_pdf,
)
from orders import context
from orders.events import order_snapshot, record_sync
from orders.models import (
    Invoice,
    InvoiceCounter,
    Order,
    OrderLine,
    OrderStatus,
    Outbox,
    Payment,
    PaymentStatus,
    table,
    utcnow,
)
from orders.states import (
    EVENT_AFTER,
    STATUS_AFTER,
    SYNC_WAREHOUSE,
    VOID_PAYMENT,
    Next,
    Step,
    next_for,
)

log = logging.getLogger(__name__)


class WarehouseUnavailable(Exception):
    """The warehouse did not confirm the reservation; retry later."""


@dataclass(frozen=True)
class Context:
    sessions: sessionmaker[Session]
    gateway: CardGateway
    settings: Settings
    http: httpx.Client


def _lock(session: Session, order_id: uuid.UUID) -> Order | None:
    return session.exec(select(Order).where(Order.id == order_id).with_for_update()).first()


def _advance(
    ctx: Context,
    session: Session,
    order: Order,
    status: OrderStatus,
    event: str,
    data: dict[str, Any],
) -> None:
    """The order's new status and its event (with the order as it now is), in one transaction."""
    order.status = status
    order.updated_at = utcnow()
    order.version += 1
    session.add(order)
    session.flush()
    record_sync(session, order.id, event, {"order": _snapshot(ctx, session, order), **data})


def _snapshot(ctx: Context, session: Session, order: Order) -> dict[str, Any]:
    assert order.number is not None
    lines = session.exec(
        select(OrderLine).where(OrderLine.order_id == order.id).order_by(OrderLine.sku)
    ).all()
    invoiced = session.exec(
        select(Invoice.id).where(Invoice.order_id == order.id, Invoice.pdf.is_not(None))  # type: ignore[union-attr]
    ).first()
    return order_snapshot(
        order_id=order.id,
        number=order.number,
        status=order.status,
        currency=order.currency,
        subtotal=order.subtotal,
        tax=order.tax,
        total=order.total,
        customer_email=order.customer_email,
        customer_name=order.customer_name,
        lines=[(x.sku, x.name, x.quantity, x.unit_price, x.line_total) for x in lines],
        invoice_url=f"{ctx.settings.public_base_url}/orders/{order.id}/invoice.pdf"
        if invoiced
        else None,
    )


def begin(ctx: Context, order_id: uuid.UUID, step: Step) -> Next:
    """Decide whether `step` has work to do, and count this delivery of it durably."""
    with ctx.sessions() as session:
        order = _lock(session, order_id)
        if order is None:
            log.warning("order %s not found for %s", order_id, step)
            return Next.STOP
        decision = next_for(order.status, step)
        if decision is not Next.RUN:
            return decision
        attempts = order.step_attempts + 1 if order.step == step else 1
        if attempts > ctx.settings.step_max_deliveries:
            reason = f"{step} crashed its worker {attempts - 1} times (poison message)"
            _fail(ctx, session, order, step, reason)
            session.commit()
            log.error("order %s failed: %s", order_id, reason)
            return Next.STOP
        order.step, order.step_attempts = step, attempts
        session.add(order)
        session.commit()
        return Next.RUN


def delivery_finished(ctx: Context, order_id: uuid.UUID, step: Step) -> None:
    """The delivery ended in a handled way (a retry is scheduled): it was no crash."""
    orders = table(Order)
    with ctx.sessions() as session:
        session.exec(
            update(orders)
            .where(orders.c.id == order_id, orders.c.step == step)
            .values(step_attempts=0)
        )
        session.commit()


def _fail(ctx: Context, session: Session, order: Order, step: Step, reason: str) -> None:
    order.failed_step, order.failure_reason = step, reason[:1000]
    _advance(
        ctx, session, order, OrderStatus.FAILED, "order.failed", {"step": step, "error": reason}
    )


def mark_failed(ctx: Context, order_id: uuid.UUID, step: Step, reason: str) -> None:
    """A step gave up (retries exhausted or a permanent error): an operator retries it from here."""
    with ctx.sessions() as session:
        order = _lock(session, order_id)
        if order is None or next_for(order.status, step) is not Next.RUN:
            return
        _fail(ctx, session, order, step, reason)
        session.commit()


def reserve_inventory(ctx: Context, order_id: uuid.UUID) -> Next:
    decision = begin(ctx, order_id, Step.RESERVE_INVENTORY)
    return _reserve(ctx, order_id) if decision is Next.RUN else decision


def _outbox_row(kind: str, order_id: uuid.UUID) -> Any:
    payload = {"order_id": str(order_id), "request_id": context.request_id.get()}
    return insert(table(Outbox)).values(kind=kind, payload=payload, created_at=utcnow())


def _reserve(ctx: Context, order_id: uuid.UUID) -> Next:
    with ctx.sessions() as session:
        order = _lock(session, order_id)
        if order is None or next_for(order.status, Step.RESERVE_INVENTORY) is not Next.RUN:
            return Next.DONE if order and order.status != OrderStatus.CANCELLED else Next.STOP
        short_sku = reserve_stock(session, order_id)
        if short_sku is None:
            _advance(
                ctx, session, order, OrderStatus.RESERVED, EVENT_AFTER[Step.RESERVE_INVENTORY], {}
            )
            if ctx.settings.warehouse_url:  # its own task: a slow warehouse never holds the chain
                session.exec(_outbox_row(SYNC_WAREHOUSE, order_id))
            session.commit()
            return Next.RUN
        session.rollback()  # all lines or none

        # Out of stock: cancel, and void the authorization through the outbox (it may need retries).
        order = _lock(session, order_id)
        if order is None or order.status != OrderStatus.PENDING:
            return Next.STOP
        data = {"reason": "out_of_stock", "sku": short_sku}
        _advance(ctx, session, order, OrderStatus.CANCELLED, "order.cancelled", data)
        session.exec(_outbox_row(VOID_PAYMENT, order_id))
        session.commit()
        log.info("order %s cancelled: %s out of stock", order_id, short_sku)
        return Next.STOP


def sync_reservation_to_warehouse(ctx: Context, order_id: uuid.UUID) -> None:
    """Idempotent at the warehouse (the key is the order's) and here (`warehouse_synced_at`)."""
    with ctx.sessions() as session:
        order = session.get(Order, order_id)
        if order is None or order.warehouse_synced_at is not None:
            return
        lines = session.exec(select(OrderLine).where(OrderLine.order_id == order_id)).all()
    try:
        response = ctx.http.post(
            f"{ctx.settings.warehouse_url}/reservations",
            json={
                "order_id": str(order_id),
                "lines": [{"sku": line.sku, "quantity": line.quantity} for line in lines],
            },
            headers={"Idempotency-Key": f"order-{order_id}-reserve"},
            timeout=ctx.settings.warehouse_timeout_s,
        )
    except httpx.TransportError as exc:
        raise WarehouseUnavailable(repr(exc)) from exc
    if response.status_code >= 500 or response.status_code == 429:
        raise WarehouseUnavailable(f"warehouse answered {response.status_code}")
    response.raise_for_status()
    with ctx.sessions() as session:
        session.exec(
            update(table(Order))
            .where(table(Order).c.id == order_id)
            .values(warehouse_synced_at=utcnow())
        )
        session.commit()


def void_payment(ctx: Context, order_id: uuid.UUID) -> None:
    """Compensation for a cancelled order: release the hold on the customer's card."""
    with ctx.sessions() as session:
        payment = session.exec(select(Payment).where(Payment.order_id == order_id)).first()
        if payment is None or payment.status != PaymentStatus.AUTHORIZED:
            return
        authorization_id = payment.authorization_id
    ctx.gateway.void(authorization_id, idempotency_key=f"order-{order_id}-void")
    with ctx.sessions() as session:
        session.exec(
            update(table(Payment))
            .where(table(Payment).c.order_id == order_id)
            .values(status=PaymentStatus.VOIDED, updated_at=utcnow())
        )
        order = _lock(session, order_id)
        if order is not None:
            record_sync(
                session, order_id, "payment.voided", {"order": _snapshot(ctx, session, order)}
            )
        session.commit()


def capture_payment(ctx: Context, order_id: uuid.UUID) -> Next:
    decision = begin(ctx, order_id, Step.CAPTURE_PAYMENT)
    if decision is not Next.RUN:
        return decision
    with ctx.sessions() as session:
        payment = session.exec(select(Payment).where(Payment.order_id == order_id)).one()
        authorization_id = payment.authorization_id
    try:
        ctx.gateway.capture(authorization_id, idempotency_key=f"order-{order_id}-capture")
    except CaptureDeclined as declined:
        return _cancel_after_declined_capture(ctx, order_id, declined.code)
    with ctx.sessions() as session:
        order = _lock(session, order_id)
        if order is None or next_for(order.status, Step.CAPTURE_PAYMENT) is not Next.RUN:
            return Next.DONE
        session.exec(
            update(table(Payment))
            .where(table(Payment).c.order_id == order_id)
            .values(status=PaymentStatus.CAPTURED, updated_at=utcnow())
        )
        _advance(
            ctx,
            session,
            order,
            STATUS_AFTER[Step.CAPTURE_PAYMENT],
            EVENT_AFTER[Step.CAPTURE_PAYMENT],
            {},
        )
        session.commit()
    return Next.RUN


def _cancel_after_declined_capture(ctx: Context, order_id: uuid.UUID, code: str) -> Next:
    with ctx.sessions() as session:
        order = _lock(session, order_id)
        if order is None or order.status != OrderStatus.RESERVED:
            return Next.STOP
        release_stock(session, order_id)
        session.exec(
            update(table(Payment))
            .where(table(Payment).c.order_id == order_id)
            .values(status=PaymentStatus.DECLINED, updated_at=utcnow())
        )
        data = {"reason": "capture_declined", "decline_code": code}
        _advance(ctx, session, order, OrderStatus.CANCELLED, "order.cancelled", data)
        session.commit()
    log.info("order %s cancelled: capture declined (%s)", order_id, code)
    return Next.STOP


def render_invoice(ctx: Context, order_id: uuid.UUID) -> Next:
    decision = begin(ctx, order_id, Step.RENDER_INVOICE)
    if decision is not Next.RUN:
        return decision
    document = _number_invoice(ctx, order_id)
    if document is None:
        return Next.DONE
    if ctx.settings.crash_on_sku and any(
        line.sku == ctx.settings.crash_on_sku for line in document.lines
    ):
        os.kill(os.getpid(), signal.SIGKILL)  # fault injection: see Settings.crash_on_sku
    pdf = render_invoice_pdf(document)
    with ctx.sessions() as session:
        order = _lock(session, order_id)
        if order is None or next_for(order.status, Step.RENDER_INVOICE) is not Next.RUN:
            return Next.DONE
        invoices = table(Invoice)
        session.exec(
            update(invoices)
            .where(invoices.c.order_id == order_id, invoices.c.pdf.is_(None))
            .values(pdf=pdf, sha256=hashlib.sha256(pdf).hexdigest(), rendered_at=utcnow())
        )
        data = {"invoice_number": document.number}
        _advance(
            ctx,
            session,
            order,
            STATUS_AFTER[Step.RENDER_INVOICE],
            EVENT_AFTER[Step.RENDER_INVOICE],
            data,
        )
        session.commit()
    return Next.RUN


def invoice_number_text(number: int) -> str:
    return f"INV-{number:06d}"


def _number_invoice(ctx: Context, order_id: uuid.UUID) -> InvoiceDocument | None:
    """Give the order its invoice number, once: the counter's row lock is held for milliseconds,
    and a rolled-back transaction gives its number back, so numbers have no gaps."""
    with ctx.sessions() as session:
        order = _lock(session, order_id)
        if order is None or next_for(order.status, Step.RENDER_INVOICE) is not Next.RUN:
            return None
        invoice = session.exec(select(Invoice).where(Invoice.order_id == order_id)).first()
        if invoice is None:
            counter = table(InvoiceCounter)
            number = session.exec(
                update(counter)
                .where(counter.c.id == 1)
                .values(last_number=counter.c.last_number + 1)
                .returning(counter.c.last_number)
            ).scalar_one()
            invoice = Invoice(order_id=order_id, number=number, issued_at=utcnow())
            session.add(invoice)
        lines = session.exec(
            select(OrderLine).where(OrderLine.order_id == order_id).order_by(OrderLine.sku)
        ).all()
        session.commit()
        return _invoice_document(ctx.settings, order, invoice, lines)


def _invoice_document(
    settings: Settings, order: Order, invoice: Invoice, lines: Any
) -> InvoiceDocument:
    assert order.number is not None
    shop = ShopDetails(
        name=settings.shop_name,
        address_lines=tuple(part.strip() for part in settings.shop_address.split(",")),
        vat_id=settings.shop_vat_id,
        email=settings.shop_email,
    )
    return InvoiceDocument(
        number=invoice_number_text(invoice.number),
        issued_at=invoice.issued_at,
        order_number=order.number,
        currency=order.currency,
        customer_name=order.customer_name,
        customer_email=order.customer_email,
        shipping_name=order.shipping_name,
        shipping_line1=order.shipping_line1,
        shipping_line2=order.shipping_line2,
        shipping_city=order.shipping_city,
        shipping_postal_code=order.shipping_postal_code,
        shipping_country=order.shipping_country,
        lines=tuple(
            InvoiceLine(line.sku, line.name, line.quantity, line.unit_price, line.line_total)
            for line in lines
        ),
        subtotal=order.subtotal,
        tax=order.tax,
        total=order.total,
        tax_rate_bps=order.tax_rate_bps,
        shop=shop,
    )


def notify(ctx: Context, order_id: uuid.UUID) -> Next:
    """The end of the chain: the order is complete. (Webhook deliveries hook in here.)"""
    decision = begin(ctx, order_id, Step.NOTIFY)
    if decision is not Next.RUN:
        return decision
    with ctx.sessions() as session:
        order = _lock(session, order_id)
        if order is None or next_for(order.status, Step.NOTIFY) is not Next.RUN:
            return Next.DONE
        order.step, order.step_attempts = None, 0
        _advance(ctx, session, order, OrderStatus.COMPLETED, EVENT_AFTER[Step.NOTIFY], {})
        session.commit()
    return Next.RUN
