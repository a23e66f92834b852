"""notify, the end of the chain: the order is complete (its `order.completed` webhook goes out
with the event), and the warehouse, if there is one, is asked to ship it."""

import uuid

from sqlmodel import Session

from fulfillment.runner import Context, Effect, Handover, begin, finish
from orders.messages import ShipOrder, enqueue
from orders.models import Order
from orders.states import Next, Step


def notify(ctx: Context, order_id: uuid.UUID, _: Handover | None = None) -> Next:
    """notify on its own, for an order found invoiced but not complete (rendered by a version
    before this one). Every other time `completion` runs in the render's commit
    (IN_THE_SAME_COMMIT)."""
    decision = begin(ctx, order_id, Step.NOTIFY)
    if decision is not Next.RUN:
        return decision
    return finish(ctx, order_id, Step.NOTIFY, completion(ctx))


def completion(ctx: Context) -> Effect:
    def complete(session: Session, order: Order) -> None:
        order.step, order.step_attempts = None, 0  # no step runs for it any more
        if ctx.settings.warehouse_url and order.warehouse_synced_at is not None:
            enqueue(session, ShipOrder(order_id=order.id))  # else the sync enqueues it

    return complete
