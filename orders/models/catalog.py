"""The catalog and its stock: what is sold, at what price, and what orders hold of it."""

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, UniqueConstraint
from sqlmodel import Field, SQLModel

from orders.models.base import BigId, timestamp


class Product(SQLModel, table=True):
    __table_args__ = (
        CheckConstraint("unit_price >= 0", name="unit_price_not_negative"),
        CheckConstraint("stock_reserved >= 0", name="stock_reserved_not_negative"),
        CheckConstraint("stock_reserved <= stock_on_hand", name="stock_not_oversold"),
    )

    sku: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    unit_price: int = Field(description="Price in minor units (cents), tax excluded.")
    currency: str = Field(max_length=3)
    stock_on_hand: int = 0
    stock_reserved: int = 0
    updated_at: datetime = timestamp()


class StockReservation(SQLModel, table=True):
    """One per order line: the unique key makes a second reservation of a line impossible."""

    __tablename__ = "stock_reservation"
    __table_args__ = (UniqueConstraint("order_id", "sku"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    order_id: uuid.UUID = Field(foreign_key="order.id", ondelete="CASCADE")
    sku: str = Field(foreign_key="product.sku", max_length=64)
    quantity: int
    created_at: datetime = timestamp()
