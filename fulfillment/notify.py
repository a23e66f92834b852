"""notify, the end of the chain: the order is complete (its `order.completed` webhook goes out
with the event)."""

import uuid

from sqlmodel import Session

from fulfillment.runner import Context, begin, finish
from orders.models import Order
from orders.states import Next, Step


def notify(ctx: Context, order_id: uuid.UUID) -> Next:
    decision = begin(ctx, order_id, Step.NOTIFY)
    if decision is not Next.RUN:
        return decision

    def complete(session: Session, order: Order) -> None:
        order.step, order.step_attempts = None, 0  # nothing runs for it any more

    return finish(ctx, order_id, Step.NOTIFY, complete)
