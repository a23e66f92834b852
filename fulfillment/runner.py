"""Running a step: the bookkeeping every step shares, so that each step is a short function.

A step is `begin`, then its outside work (a gateway call, a render), then `finish`: its effect, the
order's new status, its event and the next step's outbox message in one transaction, under the
order's row lock. No step publishes anything itself: the relay does, after the commit. Calls to the
gateway or the warehouse happen outside any transaction, under idempotency keys derived from the
order, so a redelivered step repeats the call without repeating its effect.

`begin` counts the delivery in a short transaction of its own (for a step that continues in its
task, the commit of the step before it counts it: `Handover`), and a delivery that ends in a
handled way (success, a scheduled retry) clears the count; so the count is of deliveries that
crashed their worker, and a message that does so every time is recognised after
`step_max_deliveries` and fails its order instead of looping forever.
"""

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import httpx
from sqlalchemy import Update, bindparam, case, update
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, select

from fulfillment.config import WorkerSettings
from orders import lifecycle
from orders.messages import RunStep, enqueue
from orders.models import Order, OrderStatus, table
from orders.payments import Settler
from orders.states import (
    CONTINUES_IN_TASK,
    EVENT_AFTER,
    IN_THE_SAME_COMMIT,
    STATUS_AFTER,
    STATUS_BEFORE,
    Next,
    Step,
    next_for,
    next_step,
)
from orders.view import Line, Placed

log = logging.getLogger(__name__)

Effect = Callable[[Session, Order], dict[str, Any] | None]


@dataclass(frozen=True)
class Context:
    sessions: sessionmaker[Session]
    gateway: Settler
    settings: WorkerSettings
    http: httpx.Client

    def advance(
        self,
        session: Session,
        order: Order,
        status: OrderStatus,
        event: str,
        data: dict[str, Any],
        lines: Sequence[Line] | None = None,
    ) -> None:
        base_url = self.settings.public_base_url
        lifecycle.advance(session, order, status, event, data, base_url, lines)


@dataclass
class Handover:
    """What a step hands to the step that continues in its task (CONTINUES_IN_TASK): what
    checkout wrote, as the step read it, and whether the step's commit counted the next step's
    delivery, which then skips its own `begin` (a transaction fewer). A task's first step, and a
    step called on its own, get an empty one."""

    placed: Placed | None = None
    counted: bool = False


def begin(ctx: Context, order_id: uuid.UUID, step: Step) -> Next:
    """Decide whether `step` has work to do, and count this delivery of it durably."""
    with ctx.sessions() as session:
        decision = count_delivery(ctx, session, order_id, step)
        session.commit()
    return decision


def count_delivery(ctx: Context, session: Session, order_id: uuid.UUID, step: Step) -> Next:
    """`begin` in the caller's transaction (the caller commits before the step's outside work):
    one UPDATE finds the order in the step's starting status, counts the delivery and locks the
    row."""
    params = {"count_order_id": order_id, "count_step": step, "from_status": STATUS_BEFORE[step]}
    attempts = session.exec(_count_delivery(), params=params).scalar_one_or_none()
    if attempts is None:  # not in the step's starting status: a redelivery, or stopped
        status = session.exec(select(Order.status).where(Order.id == order_id)).first()
        if status is None:
            log.warning("order %s not found for %s", order_id, step)
            return Next.STOP
        return next_for(OrderStatus(status), step)
    if attempts > ctx.settings.step_max_deliveries:
        order = lifecycle.lock(session, order_id)
        assert order is not None  # the UPDATE above found it and holds its row lock
        reason = f"{step} crashed its worker {attempts - 1} times (poison message)"
        lifecycle.fail(session, order, step, reason, ctx.settings.public_base_url)
        log.error("order %s failed: %s", order_id, reason)
        return Next.STOP
    return Next.RUN


@cache
def _count_delivery() -> Update:
    """`count_delivery`'s UPDATE, built once: every value is a parameter."""
    orders = table(Order)
    step = bindparam("count_step", type_=orders.c.step.type)
    return (
        update(orders)
        .where(
            orders.c.id == bindparam("count_order_id", type_=orders.c.id.type),
            orders.c.status == bindparam("from_status", type_=orders.c.status.type),
        )
        .values(
            step=step,
            step_attempts=case((orders.c.step == step, orders.c.step_attempts + 1), else_=1),
        )
        .returning(orders.c.step_attempts)
    )


def finish(
    ctx: Context,
    order_id: uuid.UUID,
    step: Step,
    effect: Effect,
    lines: Sequence[Line] | None = None,
    then: Effect | None = None,
    handover: Handover | None = None,
) -> Next:
    """The step's commit: its effect (which returns the event's extra data), the order's new
    status, its event and the next step's message (unless the next step continues in this
    task: CONTINUES_IN_TASK), in one transaction. A redelivery that finds
    the step done does nothing: its successor was enqueued when it was done. `lines`: the
    order's lines, if the step holds them (the event's snapshot needs them). `then`: the effect
    of the step after this one, when that step is done in this commit (IN_THE_SAME_COMMIT).
    `handover`: given when the caller runs the next step right after this commit, if that step
    continues in the task; the commit counts its delivery, as its `begin` would have."""
    with ctx.sessions() as session:
        order = lifecycle.lock(session, order_id)
        if order is None:
            return Next.STOP
        decision = next_for(order.status, step)
        if decision is not Next.RUN:
            return decision
        data = effect(session, order) or {}
        ctx.advance(session, order, STATUS_AFTER[step], EVENT_AFTER[step], data, lines)
        following = next_step(step)
        if then is not None:
            assert following in IN_THE_SAME_COMMIT, f"{following} has a commit of its own"
            step, data = following, then(session, order) or {}
            ctx.advance(session, order, STATUS_AFTER[step], EVENT_AFTER[step], data, lines)
            following = next_step(step)
        counts_next = handover is not None and following in CONTINUES_IN_TASK
        if counts_next:
            order.step, order.step_attempts = following, 1  # in the row's UPDATE at the commit
        elif following is not None and following not in CONTINUES_IN_TASK:
            enqueue(session, RunStep(order_id=order_id, step=following))
        session.commit()
    if handover is not None:
        handover.counted = counts_next
    return Next.RUN


def cancel(
    ctx: Context,
    order_id: uuid.UUID,
    from_status: OrderStatus,
    reason: dict[str, Any],
    compensate: Callable[[Session], None],
) -> Next:
    """Cancel an order still in `from_status`, with what undoes its steps so far, in one
    transaction; the rest of the chain stops."""
    with ctx.sessions() as session:
        order = lifecycle.lock(session, order_id)
        if order is None or order.status != from_status:
            return Next.STOP
        compensate(session)
        ctx.advance(session, order, OrderStatus.CANCELLED, "order.cancelled", reason)
        session.commit()
    log.info("order %s cancelled: %s", order_id, reason)
    return Next.STOP


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


def mark_failed(ctx: Context, order_id: uuid.UUID, step: Step, reason: str) -> None:
    """A step gave up (retries exhausted or a permanent error): an operator retries it from here."""
    with ctx.sessions() as session:
        order = lifecycle.lock(session, order_id)
        if order is None or next_for(order.status, step) is not Next.RUN:
            return
        lifecycle.fail(session, order, step, reason, ctx.settings.public_base_url)
        session.commit()
