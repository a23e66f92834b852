"""refund_payment and render_credit_note: what an operator's cancellation after capture leads to.

The refund goes to the gateway outside any transaction, under a key derived from the order and
the refund's number (`order-{id}-refund-{seq}`), so a redelivery after a crash finds the first
refund instead of making a second. Then one transaction records it: the cancellation done, the
stock given back, the payment's and the order's status, the credit note numbered (gapless, as
invoices), `order.refunded`, and the render's outbox message."""

import hashlib
import logging
import uuid

from sqlalchemy import update
from sqlmodel import Session, col, select

from fulfillment.invoices import next_number, shop
from fulfillment.pdf import BillingDocument, render_pdf
from fulfillment.runner import Context
from orders import lifecycle
from orders.messages import RenderCreditNote, enqueue
from orders.models import (
    Cancellation,
    CancellationKind,
    CancellationStatus,
    CreditNote,
    CreditNoteCounter,
    Invoice,
    Order,
    OrderLine,
    OrderStatus,
    Payment,
    PaymentStatus,
    table,
    utcnow,
)
from orders.refunds import credit_note_text, refunded_quantities
from orders.stock import release_lines, release_stock
from orders.view import Line, invoice_number_text, load_view

log = logging.getLogger(__name__)


def refund_payment(ctx: Context, cancellation_id: uuid.UUID) -> None:
    with ctx.sessions() as session:
        cancellation = session.get(Cancellation, cancellation_id)
        if cancellation is None or cancellation.status == CancellationStatus.DONE:
            return
        payment = session.exec(
            select(Payment).where(Payment.order_id == cancellation.order_id)
        ).one()
    order_id, key = (
        cancellation.order_id,
        f"order-{cancellation.order_id}-refund-{cancellation.seq}",
    )
    refund_id = ctx.gateway.refund(payment.authorization_id, cancellation.amount, key)
    with ctx.sessions() as session:
        order = lifecycle.lock(session, order_id)
        cancellation = session.get(Cancellation, cancellation_id, with_for_update=True)
        if order is None or cancellation is None or cancellation.status == CancellationStatus.DONE:
            return
        record_refund(ctx, session, order, cancellation, refund_id)
        session.commit()
    log.info("order %s refunded %s (refund %s)", order_id, cancellation.amount, refund_id)


def record_refund(
    ctx: Context, session: Session, order: Order, cancellation: Cancellation, refund_id: str
) -> None:
    cancellation.status, cancellation.done_at = CancellationStatus.DONE, utcnow()
    cancellation.gateway_refund_id = refund_id
    session.add(cancellation)
    if cancellation.whole_order:
        release_stock(session, order.id)
    else:
        release_lines(session, order.id, cancellation.lines)
    every_line = _every_line_refunded(session, order.id)
    pending = session.exec(
        select(Cancellation.id).where(
            Cancellation.order_id == order.id,
            Cancellation.kind == CancellationKind.REFUND,
            Cancellation.status == CancellationStatus.REQUESTED,
            Cancellation.id != cancellation.id,
        )
    ).first()
    payments = table(Payment)
    session.exec(
        update(payments)
        .where(payments.c.order_id == order.id)
        .values(
            status=PaymentStatus.REFUNDED if every_line else PaymentStatus.PARTIALLY_REFUNDED,
            updated_at=utcnow(),
        )
    )
    lines = [{"sku": sku, "quantity": q} for sku, q in sorted(cancellation.lines.items())]
    refund = {
        "amount": cancellation.amount,
        "whole_order": cancellation.whole_order,
        "lines": lines,
    }
    # A credit note corrects an invoice: a capture refunded before any invoice needs none.
    note = _number_credit_note(session, order.id, cancellation.id)
    if note is not None:
        number = credit_note_text(note.number)
        refund["credit_note"] = number
        refund["credit_note_url"] = (
            f"{ctx.settings.public_base_url}/orders/{order.id}/credit-notes/{number}.pdf"
        )
        enqueue(session, RenderCreditNote(order_id=order.id, cancellation_id=cancellation.id))
    if every_line and pending is None:
        status = OrderStatus.REFUNDED
    elif order.status == OrderStatus.CANCELLED:
        status = OrderStatus.CANCELLED  # a whole refund is on its way: it ends as refunded
    else:
        status = OrderStatus.PARTIALLY_REFUNDED
    ctx.advance(session, order, status, "order.refunded", {"refund": refund})


def _every_line_refunded(session: Session, order_id: uuid.UUID) -> bool:
    done = refunded_quantities(session, order_id)
    lines = session.exec(
        select(OrderLine.sku, OrderLine.quantity).where(OrderLine.order_id == order_id)
    ).all()
    return all(done[sku] >= quantity for sku, quantity in lines)


def _number_credit_note(
    session: Session, order_id: uuid.UUID, cancellation_id: uuid.UUID
) -> CreditNote | None:
    """The next number of the credit note series, in the refund's transaction: a rollback gives
    it back, so the series has no gaps. None when the order has no invoice to correct."""
    invoice = session.exec(select(Invoice).where(Invoice.order_id == order_id)).first()
    if invoice is None:
        return None
    number = next_number(session, CreditNoteCounter)
    note = CreditNote(
        cancellation_id=cancellation_id,
        order_id=order_id,
        number=number,
        invoice_number=invoice.number,
        issued_at=utcnow(),
    )
    session.add(note)
    return note


def render_credit_note(ctx: Context, cancellation_id: uuid.UUID) -> None:
    with ctx.sessions() as session:
        note = session.exec(
            select(CreditNote).where(CreditNote.cancellation_id == cancellation_id)
        ).first()
        if note is None or note.pdf is not None:
            return
        cancellation = session.get(Cancellation, cancellation_id)
        order = session.get(Order, note.order_id)
        assert cancellation is not None
        assert order is not None
        view = load_view(session, order)
    by_sku = {line.sku: line for line in view.lines}
    lines = tuple(
        Line(
            sku,
            by_sku[sku].name,
            quantity,
            by_sku[sku].unit_price,
            by_sku[sku].unit_price * quantity,
        )
        for sku, quantity in cancellation.lines.items()
    )
    subtotal = sum(line.line_total for line in lines)
    document = BillingDocument(
        title="Credit note",
        number=credit_note_text(note.number),
        issued_at=note.issued_at,
        order=view,
        shop=shop(ctx.settings),
        lines=lines,
        refers_to=invoice_number_text(note.invoice_number),
        tax_amount=cancellation.amount - subtotal,
    )
    pdf = render_pdf(document)
    notes = table(CreditNote)
    with ctx.sessions() as session:
        session.exec(
            update(notes)
            .where(notes.c.cancellation_id == cancellation_id, col(notes.c.pdf).is_(None))
            .values(pdf=pdf, sha256=hashlib.sha256(pdf).hexdigest(), rendered_at=utcnow())
        )
        session.commit()
