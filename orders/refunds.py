"""Cancelling an order after checkout, as an operator asks: what can be cancelled or refunded at
each stage, and for how much. The request is written in one transaction with its outbox message;
the void or the refund happens after, in a worker.

- Before capture (pending, reserved, or failed with the card only authorized): the whole order is
  cancelled at once, its stock given back and its authorization voided.
- After the invoice (invoiced: the whole order; completed or partially refunded: the whole order
  or some lines), the money is refunded; the refund, the stock given back and the credit note follow in a worker. A whole
  refund stops the order at once (`cancelled`, so nothing ships), and it becomes `refunded` when
  the money is back; a partial refund makes it `partially_refunded` when the money is back.
- In between (paid: the invoice is being issued), the operator is asked to try again shortly.
"""

import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import exists, or_
from sqlmodel import Session, col, func, select

from orders import lifecycle
from orders.messages import Message, RefundPayment, RenderCreditNote, VoidPayment, enqueue
from orders.models import (
    Cancellation,
    CancellationKind,
    CancellationStatus,
    CreditNote,
    Order,
    OrderLine,
    OrderStatus,
    Outbox,
    Payment,
    PaymentStatus,
    utcnow,
)
from orders.pricing import tax_on
from orders.stock import release_stock

VOIDABLE = (OrderStatus.PENDING, OrderStatus.RESERVED, OrderStatus.FAILED)
REFUNDABLE = (OrderStatus.INVOICED, OrderStatus.COMPLETED, OrderStatus.PARTIALLY_REFUNDED)


class CancelRefused(Exception):
    """The order cannot be cancelled as asked: `status` 409 (its state) or 422 (the lines)."""

    def __init__(
        self, status: int, code: str, title: str, detail: str, field: str | None = None
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.title, self.detail = status, code, title, detail
        self.field = field  # the request's field at fault, for a 422


class CancelKeyReused(Exception):
    """The Idempotency-Key was first used with another request for this order."""


@dataclass(frozen=True)
class CancelRequest:
    idempotency_key: str
    request_hash: str
    lines: Mapping[str, int] | None  # None: the whole order
    reason: str | None


def request_cancellation(
    session: Session, order_id: uuid.UUID, request: CancelRequest, public_base_url: str
) -> tuple[Cancellation, bool] | None:
    """Record the cancellation (or find the one this key recorded: then the flag is True), in the
    caller's transaction. None if there is no such order."""
    order = lifecycle.lock(session, order_id)
    if order is None:
        return None
    earlier = session.exec(
        select(Cancellation).where(
            Cancellation.order_id == order_id,
            Cancellation.idempotency_key == request.idempotency_key,
        )
    ).first()
    if earlier is not None:
        if earlier.request_hash != request.request_hash:
            raise CancelKeyReused(request.idempotency_key)
        return earlier, True
    payment = session.exec(select(Payment).where(Payment.order_id == order_id)).one()
    if order.status in VOIDABLE and payment.status == PaymentStatus.AUTHORIZED:
        return _void(session, order, request, public_base_url), False
    if order.status == OrderStatus.INVOICED and request.lines is not None:
        raise CancelRefused(
            409,
            "order-busy",
            "The order is completing",
            f"Order {order.number} is completing; refund lines once it is completed, or cancel "
            "the whole order now (send no lines).",
        )
    if order.status in REFUNDABLE:
        return _refund(session, order, payment, request, public_base_url), False
    if order.status == OrderStatus.PAID:
        raise CancelRefused(
            409,
            "order-busy",
            "The invoice is being issued",
            f"Order {order.number} was just paid and its invoice is being issued; "
            "try again in a few seconds.",
        )
    raise CancelRefused(
        409,
        "order-not-cancellable",
        "This order cannot be cancelled",
        f"Order {order.number} is {order.status}.",
    )


def _void(
    session: Session, order: Order, request: CancelRequest, public_base_url: str
) -> Cancellation:
    if request.lines is not None:
        raise CancelRefused(
            409,
            "partial-cancel-before-capture",
            "Nothing was captured yet",
            "Lines can be refunded once the order is invoiced; before that, cancel the whole "
            "order (send no lines).",
        )
    cancellation = _new(session, order, request, CancellationKind.VOID, {}, 0, whole=True)
    release_stock(session, order.id)
    data = {"reason": "cancelled_by_operator", "note": request.reason}
    lifecycle.advance(
        session, order, OrderStatus.CANCELLED, "order.cancelled", data, public_base_url
    )
    enqueue(session, VoidPayment(order_id=order.id))
    return cancellation


def _refund(
    session: Session,
    order: Order,
    payment: Payment,
    request: CancelRequest,
    public_base_url: str,
) -> Cancellation:
    lines = session.exec(select(OrderLine).where(OrderLine.order_id == order.id)).all()
    refunded = refunded_quantities(session, order.id)
    left = {line.sku: line.quantity - refunded[line.sku] for line in lines}
    left = {sku: quantity for sku, quantity in left.items() if quantity > 0}
    if not left:
        raise CancelRefused(
            409, "order-refunded", "Already refunded", f"Every line of order {order.number} is."
        )
    wanted = dict(left) if request.lines is None else dict(request.lines)
    for i, (sku, quantity) in enumerate(wanted.items()):
        if quantity > left.get(sku, 0):
            raise CancelRefused(
                422,
                "refund-too-large",
                "More than the order has left to refund",
                f"lines[{i}].quantity: order {order.number} has {left.get(sku, 0)} of {sku} "
                "left to refund.",
                field=f"lines[{i}].quantity",
            )
    whole = wanted == left
    if whole:  # to the cent: what was captured less what earlier refunds gave back
        amount = payment.amount - refunded_amount(session, order.id)
    else:
        prices = {line.sku: line.unit_price for line in lines}
        subtotal = sum(prices[sku] * quantity for sku, quantity in wanted.items())
        amount = subtotal + tax_on(subtotal, order.tax_rate_bps)
    cancellation = _new(session, order, request, CancellationKind.REFUND, wanted, amount, whole)
    if whole and order.status != OrderStatus.CANCELLED:  # nothing more ships
        data = {"reason": "cancelled_by_operator", "note": request.reason, "refund": amount}
        lifecycle.advance(
            session, order, OrderStatus.CANCELLED, "order.cancelled", data, public_base_url
        )
    session.flush()
    enqueue(session, RefundPayment(order_id=order.id, cancellation_id=cancellation.id))
    return cancellation


def _new(
    session: Session,
    order: Order,
    request: CancelRequest,
    kind: CancellationKind,
    lines: Mapping[str, int],
    amount: int,
    whole: bool,
) -> Cancellation:
    seq = session.exec(
        select(func.coalesce(func.max(Cancellation.seq), 0)).where(
            Cancellation.order_id == order.id
        )
    ).one()
    cancellation = Cancellation(
        id=uuid.uuid4(),
        order_id=order.id,
        seq=seq + 1,
        idempotency_key=request.idempotency_key,
        request_hash=request.request_hash,
        kind=kind,
        whole_order=whole,
        lines=dict(lines),
        amount=amount,
        reason=request.reason,
    )
    session.add(cancellation)
    return cancellation


def refunded_quantities(session: Session, order_id: uuid.UUID) -> Counter[str]:
    """Units of each SKU that refunds of this order cover, asked for or done."""
    rows = session.exec(
        select(Cancellation.lines).where(
            Cancellation.order_id == order_id, Cancellation.kind == CancellationKind.REFUND
        )
    ).all()
    total: Counter[str] = Counter()
    for lines in rows:
        total.update(lines)
    return total


def refunded_amount(session: Session, order_id: uuid.UUID) -> int:
    return session.exec(
        select(func.coalesce(func.sum(Cancellation.amount), 0)).where(
            Cancellation.order_id == order_id, col(Cancellation.kind) == CancellationKind.REFUND
        )
    ).one()


def credit_note_text(number: int) -> str:
    return f"CN-{number:06d}"


def stalled(session: Session, idle_for: timedelta, limit: int = 100) -> list[Message]:
    """What cancellations wait for, when nothing moves them: still requested, or refunded with no
    credit note rendered, for `idle_for`, and no message for their order waiting to be published
    or published within that time (the void's, the refund's or the render's message was lost, or
    its task gave up). Their messages, to enqueue again: each task finds work done and does none."""
    cutoff = utcnow() - idle_for
    quiet = ~exists().where(
        col(Outbox.order_id) == col(Cancellation.order_id),
        or_(col(Outbox.published_at).is_(None), col(Outbox.published_at) > cutoff),
    )
    requested = session.exec(
        select(Cancellation)
        .where(
            Cancellation.status == CancellationStatus.REQUESTED,
            col(Cancellation.created_at) < cutoff,
            quiet,
        )
        .limit(limit)
    ).all()
    messages: list[Message] = [
        VoidPayment(order_id=c.order_id)
        if c.kind == CancellationKind.VOID
        else RefundPayment(order_id=c.order_id, cancellation_id=c.id)
        for c in requested
    ]
    unrendered = session.exec(
        select(Cancellation)
        .join(CreditNote, col(CreditNote.cancellation_id) == col(Cancellation.id))
        .where(col(CreditNote.pdf).is_(None), col(CreditNote.issued_at) < cutoff, quiet)
        .limit(limit)
    ).all()
    messages += [RenderCreditNote(order_id=c.order_id, cancellation_id=c.id) for c in unrendered]
    return messages
