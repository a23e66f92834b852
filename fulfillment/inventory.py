"""Stock arithmetic in SQL: one conditional UPDATE per line, so no concurrency can oversell."""

import uuid

from sqlalchemy import delete, insert, select, update
from sqlmodel import Session

from orders.models import OrderLine, Product, StockReservation, table, utcnow


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


def release_stock(session: Session, order_id: uuid.UUID) -> int:
    """Give back what the order holds, in the caller's transaction; safe to run twice."""
    products, reservations = table(Product), table(StockReservation)
    released = session.exec(
        delete(reservations)
        .where(reservations.c.order_id == order_id)
        .returning(reservations.c.sku, reservations.c.quantity)
    ).all()
    for sku, quantity in sorted(released):
        session.exec(
            update(products)
            .where(products.c.sku == sku)
            .values(stock_reserved=products.c.stock_reserved - quantity, updated_at=utcnow())
        )
    return len(released)
