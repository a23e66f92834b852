"""Moving an order along its states: every transition is the new status and its event (with the
order as it now is) in one transaction, under the order's row lock."""

import uuid
from collections.abc import Sequence
from datetime import timedelta
from functools import cache
from typing import Any

from sqlalchemy import and_, bindparam, exists, or_
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from orders import events
from orders.messages import Message, RunStep, ShipOrder, SyncWarehouse, enqueue
from orders.models import Invoice, Order, OrderStatus, Outbox, table, utcnow
from orders.states import SHIPPABLE, STATUS_BEFORE, WAITING_FOR, Step
from orders.view import Line, load_view, order_view

STALLED = "order.stalled"
# An invoice is stored in the transaction that makes its order `invoiced`: none exists before,
# and an invoiced or completed order has one. Of the other statuses, only its row tells.
BEFORE_INVOICE = (OrderStatus.PENDING, OrderStatus.RESERVED, OrderStatus.PAID)
INVOICED = (OrderStatus.INVOICED, OrderStatus.COMPLETED)


class NotRetryable(Exception):
    """Only a failed order can be retried."""

    def __init__(self, status: OrderStatus) -> None:
        super().__init__(status)
        self.status = status


def lock(session: Session, order_id: uuid.UUID) -> Order | None:
    return session.exec(_lock(), params={"lock_order_id": order_id}).first()


@cache
def _lock() -> SelectOfScalar[Order]:
    """`lock`'s SELECT ... FOR UPDATE, built once (the steps lock an order three times)."""
    order_id = bindparam("lock_order_id", type_=table(Order).c.id.type)
    return select(Order).where(col(Order.id) == order_id).with_for_update()


def advance(
    session: Session,
    order: Order,
    status: OrderStatus,
    event: str,
    data: dict[str, Any],
    public_base_url: str,
    lines: Sequence[Line] | None = None,
) -> None:
    """The order's new status and its event, in the caller's transaction. `lines`: the order's
    lines, when the caller holds them already (they never change after checkout)."""
    order.status = status
    order.updated_at = utcnow()
    order.version += 1
    session.add(order)  # written at the commit's flush: one UPDATE for two advances in a commit
    record_event(session, order, event, data, public_base_url, lines)


def record_event(
    session: Session,
    order: Order,
    event: str,
    data: dict[str, Any],
    public_base_url: str,
    lines: Sequence[Line] | None = None,
) -> None:
    """An event about the order, with the order as it now is (and its invoice, once rendered)."""
    invoiced = order.status in INVOICED
    if not invoiced and order.status not in BEFORE_INVOICE:
        rendered = select(Invoice.id).where(
            Invoice.order_id == order.id, col(Invoice.pdf).is_not(None)
        )
        invoiced = session.exec(rendered).first() is not None
    invoice_url = f"{public_base_url}/orders/{order.id}/invoice.pdf" if invoiced else None
    view = load_view(session, order) if lines is None else order_view(order, lines)
    snapshot = view.snapshot(invoice_url)
    with session.no_autoflush:  # the order's own UPDATE waits for the commit (see `advance`)
        events.record(session, order.id, event, {"order": snapshot, **data})


def fail(session: Session, order: Order, step: Step, reason: str, public_base_url: str) -> None:
    """The step gave up: the order waits for an operator, who can retry it from that step."""
    order.failed_step, order.failure_reason = step, reason[:1000]
    data = {"step": step, "error": reason}
    advance(session, order, OrderStatus.FAILED, "order.failed", data, public_base_url)


def retry_failed(session: Session, order_id: uuid.UUID) -> Step | None:
    """Resume a failed order from the step that failed, in the caller's transaction: back to that
    step's starting status, a fresh delivery count, and the rest of the chain through the outbox.
    Returns that step; None if there is no such order."""
    order = lock(session, order_id)
    if order is None:
        return None
    if order.status != OrderStatus.FAILED or order.failed_step is None:
        raise NotRetryable(order.status)
    step = Step(order.failed_step)
    order.status = STATUS_BEFORE[step]
    order.failed_step, order.failure_reason = None, None
    order.step, order.step_attempts = None, 0
    order.version += 1
    order.updated_at = utcnow()
    session.add(order)
    session.flush()
    events.record(session, order_id, "order.retry_requested", {"step": step})
    enqueue(session, RunStep(order_id=order_id, step=step))
    return step


def stalled(session: Session, idle_for: timedelta, limit: int) -> Sequence[Order]:
    """Orders on their way that nothing moves: no progress for `idle_for`, and no message for them
    waiting to be published or published within that time (their step's message was lost, or a
    task gave up). A completed order that a warehouse ships (`order.ships`) is on its way until it
    shipped; so is one partly refunded since (the rest ships: SHIPPABLE). Locked; rows another
    relay holds are skipped."""
    cutoff = utcnow() - idle_for
    in_flight = exists().where(
        col(Outbox.order_id) == col(Order.id),
        or_(col(Outbox.published_at).is_(None), col(Outbox.published_at) > cutoff),
    )
    unshipped = and_(
        col(Order.status).in_(list(SHIPPABLE)),
        col(Order.ships).is_(True),
        col(Order.shipped_at).is_(None),
    )
    on_its_way = or_(col(Order.status).in_(list(WAITING_FOR)), unshipped)
    return session.exec(
        select(Order)
        .where(on_its_way, col(Order.updated_at) < cutoff, ~in_flight)
        .order_by(col(Order.updated_at))
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()


def requeue(session: Session, order: Order) -> str:
    """Enqueue again what a stalled order waits for (the next step, or its warehouse sync or
    shipment), noted on its timeline (`order.stalled`), in the caller's transaction; returns the
    task's name. A task that did run finds its work done."""
    message: Message
    if order.status in SHIPPABLE:
        shipped_next = order.warehouse_synced_at is not None
        message = (ShipOrder if shipped_next else SyncWarehouse)(order_id=order.id)
    else:
        message = RunStep(order_id=order.id, step=WAITING_FOR[order.status])
    idle_s = round((utcnow() - order.updated_at).total_seconds())
    events.record(session, order.id, STALLED, {"task": message.task.name, "idle_s": idle_s})
    enqueue(session, message)
    return message.task.name
