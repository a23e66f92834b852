"""The first step, reserve_inventory: every line of the order or none, each with one conditional
UPDATE, so no concurrency can oversell. Out of stock cancels the order and voids its
authorization (through the outbox: the void may need retries)."""

import uuid

from sqlalchemy import insert, select, update
from sqlmodel import Session

from fulfillment.runner import Context, begin, cancel, finish
from orders.messages import SyncWarehouse, VoidPayment, enqueue
from orders.models import Order, OrderLine, OrderStatus, Product, StockReservation, table, utcnow
from orders.states import Next, Step


class OutOfStock(Exception):
    def __init__(self, sku: str) -> None:
        super().__init__(sku)
        self.sku = sku


def reserve_inventory(ctx: Context, order_id: uuid.UUID) -> Next:
    decision = begin(ctx, order_id, Step.RESERVE_INVENTORY)
    if decision is not Next.RUN:
        return decision

    def reserve(session: Session, order: Order) -> None:
        if (short := reserve_stock(session, order_id)) is not None:
            raise OutOfStock(short)  # the transaction rolls back: all lines or none
        if ctx.settings.warehouse_url:  # its own task: a slow warehouse never holds the chain
            enqueue(session, SyncWarehouse(order_id=order_id))

    try:
        return finish(ctx, order_id, Step.RESERVE_INVENTORY, reserve)
    except OutOfStock as short:
        reason = {"reason": "out_of_stock", "sku": short.sku}
        return cancel(
            ctx,
            order_id,
            OrderStatus.PENDING,
            reason,
            lambda session: enqueue(session, VoidPayment(order_id=order_id)),
        )


def reserve_stock(session: Session, order_id: uuid.UUID) -> str | None:
    """Reserve every line of the order, in the caller's transaction. Returns the first SKU that is
    short (the caller rolls back: all lines or none), or None when all are reserved."""
    products, reservations = table(Product), table(StockReservation)
    lines = session.exec(
        select(OrderLine.sku, OrderLine.quantity)  # type: ignore[call-overload]
        .where(OrderLine.order_id == order_id)
        .order_by(OrderLine.sku)  # one lock order for every transaction: no deadlocks
    ).all()
    for sku, quantity in lines:
        reserved = session.exec(
            update(products)
            .where(
                products.c.sku == sku,
                products.c.stock_on_hand - products.c.stock_reserved >= quantity,
            )
            .values(stock_reserved=products.c.stock_reserved + quantity, updated_at=utcnow())
        )
        if reserved.rowcount != 1:
            return str(sku)
        session.exec(insert(reservations).values(order_id=order_id, sku=sku, quantity=quantity))
    return None
