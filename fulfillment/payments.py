"""capture_payment, the second step, and the compensations on the card: a declined capture cancels
the order and gives its stock back; a cancelled order's authorization is voided."""

import logging
import uuid

from sqlalchemy import update
from sqlmodel import Session, select

from fulfillment.inventory import release_stock
from fulfillment.runner import Context, begin, cancel, finish
from orders import lifecycle
from orders.models import Order, OrderStatus, Payment, PaymentStatus, table, utcnow
from orders.payments import CaptureDeclined
from orders.states import Next, Step

log = logging.getLogger(__name__)


def capture_payment(ctx: Context, order_id: uuid.UUID) -> Next:
    decision = begin(ctx, order_id, Step.CAPTURE_PAYMENT)
    if decision is not Next.RUN:
        return decision
    authorization_id = _payment(ctx, order_id).authorization_id
    try:
        ctx.gateway.capture(authorization_id, idempotency_key=f"order-{order_id}-capture")
    except CaptureDeclined as declined:

        def give_back(session: Session) -> None:
            release_stock(session, order_id)
            _set_status(session, order_id, PaymentStatus.DECLINED)

        reason = {"reason": "capture_declined", "decline_code": declined.code}
        return cancel(ctx, order_id, OrderStatus.RESERVED, reason, give_back)

    def captured(session: Session, order: Order) -> None:
        _set_status(session, order_id, PaymentStatus.CAPTURED)

    return finish(ctx, order_id, Step.CAPTURE_PAYMENT, captured)


def void_payment(ctx: Context, order_id: uuid.UUID) -> None:
    """Release the hold on a cancelled order's card; `payment.voided` tells the merchant."""
    payment = _payment(ctx, order_id)
    if payment.status != PaymentStatus.AUTHORIZED:
        return
    ctx.gateway.void(payment.authorization_id, idempotency_key=f"order-{order_id}-void")
    with ctx.sessions() as session:
        _set_status(session, order_id, PaymentStatus.VOIDED)
        order = lifecycle.lock(session, order_id)
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


def _set_status(session: Session, order_id: uuid.UUID, status: PaymentStatus) -> None:
    payments = table(Payment)
    session.exec(
        update(payments)
        .where(payments.c.order_id == order_id)
        .values(status=status, updated_at=utcnow())
    )
