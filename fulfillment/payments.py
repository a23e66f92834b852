"""capture_payment, the second step, and the compensations on the card: a declined capture cancels
the order and gives its stock back; a cancelled order's authorization is voided (or, when the
capture got there first, refunded)."""

import logging
import uuid
from functools import cache

from sqlalchemy import Update, bindparam, update
from sqlmodel import Session, select

from fulfillment.runner import Context, Handover, cancel, count_delivery, finish
from orders import lifecycle
from orders.messages import RefundPayment, enqueue
from orders.models import (
    Cancellation,
    CancellationKind,
    CancellationStatus,
    Order,
    OrderLine,
    OrderStatus,
    Payment,
    PaymentStatus,
    table,
    utcnow,
)
from orders.payments import CaptureDeclined
from orders.states import Next, Step
from orders.stock import release_stock
from orders.view import Placed, load_placed

log = logging.getLogger(__name__)


def capture_payment(ctx: Context, order_id: uuid.UUID, handover: Handover | None = None) -> Next:
    """After reserve in its task, with the authorization reserve read and its delivery counted in
    reserve's commit; else `begin` here. An operator's cancel that lands between the two is met
    by `finish`, as one that lands during the gateway call is."""
    placed: Placed | None = handover.placed if handover and handover.counted else None
    if placed is None:
        with ctx.sessions() as session:  # `begin`, and the authorization read with it
            decision = count_delivery(ctx, session, order_id, Step.CAPTURE_PAYMENT)
            placed = load_placed(session, order_id) if decision is Next.RUN else None
            session.commit()
        if placed is None:
            return decision
    try:
        key = f"order-{order_id}-capture"
        ctx.gateway.capture(placed.authorization_id, idempotency_key=key)
    except CaptureDeclined as declined:

        def give_back(session: Session) -> None:
            release_stock(session, order_id)
            _set_status(session, order_id, PaymentStatus.DECLINED)

        reason = {"reason": "capture_declined", "decline_code": declined.code}
        return cancel(ctx, order_id, OrderStatus.RESERVED, reason, give_back)

    def captured(session: Session, order: Order) -> None:
        _set_status(session, order_id, PaymentStatus.CAPTURED)

    decision = finish(ctx, order_id, Step.CAPTURE_PAYMENT, captured, placed.lines)
    if decision is Next.STOP:
        refund_capture_of_cancelled(ctx, order_id)
    return decision


def refund_capture_of_cancelled(ctx: Context, order_id: uuid.UUID) -> None:
    """An operator cancelled the order while its capture was on its way to the gateway: the void
    asked for cannot release money already taken, so the cancellation becomes a refund of it."""
    with ctx.sessions() as session:
        order = lifecycle.lock(session, order_id)
        if order is None or order.status != OrderStatus.CANCELLED:
            return
        void = session.exec(
            select(Cancellation).where(
                Cancellation.order_id == order_id, Cancellation.kind == CancellationKind.VOID
            )
        ).first()
        payment = session.exec(select(Payment).where(Payment.order_id == order_id)).one()
        if void is None or payment.status != PaymentStatus.AUTHORIZED:
            return
        _set_status(session, order_id, PaymentStatus.CAPTURED)
        lines = session.exec(select(OrderLine).where(OrderLine.order_id == order_id)).all()
        void.kind, void.amount = CancellationKind.REFUND, payment.amount
        void.lines = {line.sku: line.quantity for line in lines}
        session.add(void)
        enqueue(session, RefundPayment(order_id=order_id, cancellation_id=void.id))
        session.commit()
    log.warning("order %s was captured as it was cancelled: refunding the capture", order_id)


def void_payment(ctx: Context, order_id: uuid.UUID) -> None:
    """Release the hold on a cancelled order's card; `payment.voided` tells the merchant. Two
    deliveries of the void may both reach the gateway (its idempotency key makes them one void):
    the first to move the payment from authorized, under the order's lock, records it."""
    payment = _payment(ctx, order_id)
    if payment.status != PaymentStatus.AUTHORIZED:
        return
    ctx.gateway.void(payment.authorization_id, idempotency_key=f"order-{order_id}-void")
    with ctx.sessions() as session:
        order = lifecycle.lock(session, order_id)
        if not _set_status(
            session, order_id, PaymentStatus.VOIDED, only_from=PaymentStatus.AUTHORIZED
        ):
            return  # another delivery of this void recorded it
        cancellations = table(Cancellation)
        session.exec(  # an operator's cancellation, if that is what this void answers
            update(cancellations)
            .where(
                cancellations.c.order_id == order_id,
                cancellations.c.kind == CancellationKind.VOID,
            )
            .values(status=CancellationStatus.DONE, done_at=utcnow())
        )
        if order is not None:
            base_url = ctx.settings.public_base_url
            lifecycle.record_event(session, order, "payment.voided", {}, base_url)
        session.commit()


def void_authorization(ctx: Context, order_id: uuid.UUID, authorization_id: str) -> None:
    """Release an authorization that no order holds (checkout could not write the order)."""
    ctx.gateway.void(authorization_id, idempotency_key=f"order-{order_id}-void")
    log.warning("authorization %s voided: no order was written for it", authorization_id)


def _payment(ctx: Context, order_id: uuid.UUID) -> Payment:
    with ctx.sessions() as session:
        return session.exec(select(Payment).where(Payment.order_id == order_id)).one()


def _set_status(
    session: Session,
    order_id: uuid.UUID,
    status: PaymentStatus,
    only_from: PaymentStatus | None = None,
) -> bool:
    """Set the payment's status (only if it is `only_from`, when given); whether it was set."""
    params = {"pay_order_id": order_id, "to_status": status, "now": utcnow()}
    if only_from is not None:
        params["only_from"] = only_from
    result = session.exec(_set_status_statement(only_from is not None), params=params)
    return bool(result.rowcount)


@cache
def _set_status_statement(only_from: bool) -> Update:
    payments = table(Payment)
    change = update(payments).where(
        payments.c.order_id == bindparam("pay_order_id", type_=payments.c.order_id.type)
    )
    if only_from:
        change = change.where(
            payments.c.status == bindparam("only_from", type_=payments.c.status.type)
        )
    return change.values(
        status=bindparam("to_status", type_=payments.c.status.type),
        updated_at=bindparam("now", type_=payments.c.updated_at.type),
    )
