"""The first step, reserve_inventory: every line of the order or none, each with one conditional
UPDATE, so no concurrency can oversell. Out of stock cancels the order and voids its
authorization (through the outbox: the void may need retries)."""

import uuid
from collections.abc import Sequence
from functools import cache

from sqlalchemy import Insert, Update, bindparam, insert, update
from sqlmodel import Session

from fulfillment.runner import Context, Handover, cancel, count_delivery, finish
from orders.messages import SyncWarehouse, VoidPayment, enqueue
from orders.models import Order, OrderStatus, Product, StockReservation, table, utcnow
from orders.states import Next, Step
from orders.view import Line, load_placed


class OutOfStock(Exception):
    def __init__(self, sku: str) -> None:
        super().__init__(sku)
        self.sku = sku


def reserve_inventory(ctx: Context, order_id: uuid.UUID, handover: Handover | None = None) -> Next:
    with ctx.sessions() as session:  # `begin`, and the lines to reserve read with it
        decision = count_delivery(ctx, session, order_id, Step.RESERVE_INVENTORY)
        placed = load_placed(session, order_id) if decision is Next.RUN else None
        session.commit()
    if placed is None:
        return decision
    lines = placed.lines
    if handover is not None:
        handover.placed = placed  # capture's authorization was read with the lines

    def reserve(session: Session, order: Order) -> None:
        if (short := reserve_stock(session, order_id, lines)) is not None:
            raise OutOfStock(short)  # the transaction rolls back: all lines or none
        if ctx.settings.warehouse_url:  # its own task: a slow warehouse never holds the chain
            order.ships = True
            enqueue(session, SyncWarehouse(order_id=order_id))

    try:
        return finish(ctx, order_id, Step.RESERVE_INVENTORY, reserve, lines, handover=handover)
    except OutOfStock as short:
        reason = {"reason": "out_of_stock", "sku": short.sku}
        return cancel(
            ctx,
            order_id,
            OrderStatus.PENDING,
            reason,
            lambda session: enqueue(session, VoidPayment(order_id=order_id)),
        )


@cache
def _reserve_line() -> Update:
    """One line's conditional UPDATE, built once: `quantity` of `sku` if that many are free."""
    products = table(Product)
    quantity = bindparam("line_quantity", type_=products.c.stock_reserved.type)
    return (
        update(products)
        .where(
            products.c.sku == bindparam("line_sku", type_=products.c.sku.type),
            products.c.stock_on_hand - products.c.stock_reserved >= quantity,
        )
        .values(
            stock_reserved=products.c.stock_reserved + quantity,
            updated_at=bindparam("now", type_=products.c.updated_at.type),
        )
    )


def reserve_stock(session: Session, order_id: uuid.UUID, lines: Sequence[Line]) -> str | None:
    """Reserve every line of the order, in the caller's transaction. Returns the first SKU that is
    short (the caller rolls back: all lines or none), or None when all are reserved."""
    now = utcnow()
    # One lock order for every transaction, by SKU: no deadlocks.
    for line in sorted(lines, key=lambda line: line.sku):
        params = {"line_sku": line.sku, "line_quantity": line.quantity, "now": now}
        reserved = session.exec(_reserve_line(), params=params)
        if reserved.rowcount != 1:
            return line.sku
    rows = [{"order_id": order_id, "sku": x.sku, "quantity": x.quantity} for x in lines]
    session.exec(_keep(), params=rows)  # one INSERT of all the rows (insertmanyvalues)
    return None


@cache
def _keep() -> Insert:
    """The reservations' INSERT, built once: its rows are the parameters."""
    return insert(table(StockReservation))
