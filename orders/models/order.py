"""The order aggregate: the order, its lines, and its timeline of events."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Index, Sequence, UniqueConstraint, func, select
from sqlmodel import Column, Field, SQLModel

from orders.models.base import BigId, JSONType, UtcDateTime, status_column, timestamp

FIRST_ORDER_NUMBER = 100_001
ORDER_NUMBER_SEQ = Sequence(
    "order_number_seq", start=FIRST_ORDER_NUMBER, metadata=SQLModel.metadata
)


class OrderStatus(StrEnum):
    PENDING = "pending"
    RESERVED = "reserved"
    PAID = "paid"
    INVOICED = "invoiced"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"
    # After capture: every line refunded (a cancelled order whose money went back), or some.
    REFUNDED = "refunded"
    PARTIALLY_REFUNDED = "partially_refunded"


class Order(SQLModel, table=True):
    __tablename__ = "order"
    __table_args__ = (Index(None, "status", "created_at"),)
    __mapper_args__ = {"eager_defaults": True}  # INSERT ... RETURNING number

    id: uuid.UUID = Field(primary_key=True)
    number: int | None = Field(
        default=None,  # assigned by the database from order_number_seq
        sa_column=Column(
            BigInteger,
            ORDER_NUMBER_SEQ,
            server_default=ORDER_NUMBER_SEQ.next_value(),
            nullable=False,
            unique=True,
        ),
    )
    status: OrderStatus = Field(
        default=OrderStatus.PENDING, sa_type=status_column(OrderStatus, length=24)
    )
    customer_email: str = Field(max_length=254)
    customer_name: str = Field(max_length=200)
    shipping_name: str = Field(max_length=200)
    shipping_line1: str = Field(max_length=200)
    shipping_line2: str | None = Field(default=None, max_length=200)
    shipping_city: str = Field(max_length=100)
    shipping_postal_code: str = Field(max_length=20)
    shipping_country: str = Field(max_length=2)
    currency: str = Field(max_length=3)
    subtotal: int
    tax: int
    tax_rate_bps: int = Field(description="The rate applied at checkout, for the invoice.")
    total: int
    access_token_hash: str = Field(max_length=64)
    version: int = 1
    # Fulfilment bookkeeping: which step is running and how often it was delivered (a poison
    # order is recognised by its count), where it failed and why, when the warehouse heard of it
    # and when it shipped.
    step: str | None = Field(default=None, max_length=32)
    step_attempts: int = 0
    failed_step: str | None = Field(default=None, max_length=32)
    failure_reason: str | None = Field(default=None, max_length=1000)
    warehouse_synced_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    # Whether a warehouse ships it (one was configured when its stock was reserved): its
    # `order.shipped` is still to come after `completed` until `shipped_at`.
    ships: bool = Field(default=False, sa_column_kwargs={"server_default": "false"})
    # When the warehouse confirmed the shipment: the reservation became a decrement of stock.
    shipped_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    created_at: datetime = timestamp()
    updated_at: datetime = timestamp()


def next_order_number(dialect: str) -> Any:
    """The next order number, as an SQL expression evaluated inside the INSERT. SQLite has no
    sequences, but it has one writer at a time, so max + 1 in the same statement is safe there."""
    if dialect == "sqlite":
        orders = SQLModel.metadata.tables["order"]
        return select(
            func.coalesce(func.max(orders.c.number), FIRST_ORDER_NUMBER - 1) + 1
        ).scalar_subquery()
    return ORDER_NUMBER_SEQ.next_value()


class OrderLine(SQLModel, table=True):
    __tablename__ = "order_line"
    __table_args__ = (UniqueConstraint("order_id", "sku"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    order_id: uuid.UUID = Field(foreign_key="order.id", ondelete="CASCADE")
    sku: str = Field(foreign_key="product.sku", max_length=64)
    name: str = Field(max_length=200)
    quantity: int
    unit_price: int
    line_total: int


class OrderEvent(SQLModel, table=True):
    """An order's timeline; without an order, one of the shop's own events (`catalog.imported`),
    which only webhooks carry."""

    __tablename__ = "order_event"
    # The dashboard's figures read events of a type over the last hour or day.
    __table_args__ = (UniqueConstraint("order_id", "seq"), Index(None, "type", "occurred_at"))

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    order_id: uuid.UUID | None = Field(default=None, foreign_key="order.id", ondelete="CASCADE")
    seq: int | None = Field(default=None, description="1, 2, 3... per order: its timeline.")
    type: str = Field(max_length=64)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    occurred_at: datetime = timestamp()
