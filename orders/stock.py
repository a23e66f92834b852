"""Stock held by orders: reservations given back (a cancellation, a refund) or consumed (a
shipment), in the caller's transaction. Both sides use them: the operators' cancel in the API and
the steps in the workers."""

import uuid
from collections.abc import Mapping

from sqlalchemy import delete, update
from sqlmodel import Session, select

from orders.models import Product, StockReservation, table, utcnow


def consume_stock(session: Session, order_id: uuid.UUID) -> int:
    """The order shipped: what it reserved leaves the shelf. On-hand and reserved both fall by
    the quantity, in the caller's transaction; safe to run twice."""
    return _settle_reservations(session, order_id, shipped=True)


def release_stock(session: Session, order_id: uuid.UUID) -> int:
    """Give back what the order holds, in the caller's transaction; safe to run twice."""
    return _settle_reservations(session, order_id, shipped=False)


def _settle_reservations(session: Session, order_id: uuid.UUID, shipped: bool) -> int:
    products, reservations = table(Product), table(StockReservation)
    released = session.exec(
        delete(reservations)
        .where(reservations.c.order_id == order_id)
        .returning(reservations.c.sku, reservations.c.quantity)
    ).all()
    for sku, quantity in sorted(released):  # one lock order for every transaction
        on_hand = products.c.stock_on_hand - quantity if shipped else products.c.stock_on_hand
        session.exec(
            update(products)
            .where(products.c.sku == sku)
            .values(
                stock_on_hand=on_hand,
                stock_reserved=products.c.stock_reserved - quantity,
                updated_at=utcnow(),
            )
        )
    return len(released)


def release_lines(session: Session, order_id: uuid.UUID, lines: Mapping[str, int]) -> int:
    """Give back part of what the order holds (a partial refund before it shipped): each line's
    reservation falls by the quantity, at most to nothing. Returns the units given back."""
    products, reservations = table(Product), table(StockReservation)
    given = 0
    for sku, wanted in sorted(lines.items()):  # one lock order for every transaction
        held = session.exec(
            select(StockReservation.quantity)
            .where(StockReservation.order_id == order_id, StockReservation.sku == sku)
            .with_for_update()
        ).first()
        quantity = min(wanted, held or 0)
        if quantity == 0:
            continue
        session.exec(
            update(reservations)
            .where(reservations.c.order_id == order_id, reservations.c.sku == sku)
            .values(quantity=reservations.c.quantity - quantity)
        )
        session.exec(
            update(products)
            .where(products.c.sku == sku)
            .values(stock_reserved=products.c.stock_reserved - quantity, updated_at=utcnow())
        )
        given += quantity
    session.exec(
        delete(reservations).where(
            reservations.c.order_id == order_id, reservations.c.quantity == 0
        )
    )
    return given
