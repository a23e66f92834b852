"""Tables. Every change here is an Alembic revision (`make migration m="..."`)."""

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    Sequence,
    Table,
    UniqueConstraint,
    func,
    select,
)
from sqlalchemy import Enum as SAEnum
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Column, Field, SQLModel

SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType = JSON().with_variant(JSONB(), "postgresql")
# SQLite autoincrements only an INTEGER PRIMARY KEY (the embedded demo); BIGINT everywhere else.
BigId = BigInteger().with_variant(Integer(), "sqlite")
FIRST_ORDER_NUMBER = 100_001
ORDER_NUMBER_SEQ = Sequence(
    "order_number_seq", start=FIRST_ORDER_NUMBER, metadata=SQLModel.metadata
)


def table(model: type[SQLModel]) -> Table:
    """The Core table of a model, for hot paths that skip the ORM's unit of work."""
    core: Table = model.__table__  # type: ignore[attr-defined]
    return core


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware in and out. PostgreSQL keeps the zone; SQLite (the embedded demo) stores
    text without one, so values read back are marked UTC, as they were written."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    return datetime.now(UTC)


def _status(enum: type[StrEnum]) -> Any:
    """Stored as its value in a VARCHAR: adding a state needs no ALTER TYPE."""
    return SAEnum(
        enum, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]
    )


def _timestamp(**kwargs: Any) -> Any:
    return Field(default_factory=utcnow, sa_type=UtcDateTime, **kwargs)


def next_order_number(dialect: str) -> Any:
    """The next order number, as an SQL expression evaluated inside the INSERT. SQLite has no
    sequences, but it has one writer at a time, so max + 1 in the same statement is safe there."""
    if dialect == "sqlite":
        orders = SQLModel.metadata.tables["order"]
        return select(
            func.coalesce(func.max(orders.c.number), FIRST_ORDER_NUMBER - 1) + 1
        ).scalar_subquery()
    return ORDER_NUMBER_SEQ.next_value()


class OrderStatus(StrEnum):
    PENDING = "pending"
    RESERVED = "reserved"
    PAID = "paid"
    INVOICED = "invoiced"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


class PaymentStatus(StrEnum):
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    DECLINED = "declined"  # the capture was refused
    VOIDED = "voided"


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
    updated_at: datetime = _timestamp()


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
    status: OrderStatus = Field(default=OrderStatus.PENDING, sa_type=_status(OrderStatus))
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
    # order is recognised by its count), where it failed and why, when the warehouse heard of it.
    step: str | None = Field(default=None, max_length=32)
    step_attempts: int = 0
    failed_step: str | None = Field(default=None, max_length=32)
    failure_reason: str | None = Field(default=None, max_length=1000)
    warehouse_synced_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()


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


class Payment(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    order_id: uuid.UUID = Field(foreign_key="order.id", ondelete="CASCADE", unique=True)
    gateway: str = Field(max_length=32)
    authorization_id: str = Field(max_length=100, unique=True)
    status: PaymentStatus = Field(default=PaymentStatus.AUTHORIZED, sa_type=_status(PaymentStatus))
    amount: int
    currency: str = Field(max_length=3)
    token_fingerprint: str = Field(max_length=64, description="HMAC of the token, never the token.")
    card_brand: str | None = Field(default=None, max_length=32)
    card_last4: str | None = Field(default=None, max_length=4)
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()


class StockReservation(SQLModel, table=True):
    """One per order line: the unique key makes a second reservation of a line impossible."""

    __tablename__ = "stock_reservation"
    __table_args__ = (UniqueConstraint("order_id", "sku"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    order_id: uuid.UUID = Field(foreign_key="order.id", ondelete="CASCADE")
    sku: str = Field(foreign_key="product.sku", max_length=64)
    quantity: int
    created_at: datetime = _timestamp()


class Invoice(SQLModel, table=True):
    """Numbered first (short transaction), rendered after: a number is never lost or reused."""

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    order_id: uuid.UUID = Field(foreign_key="order.id", ondelete="CASCADE", unique=True)
    number: int = Field(unique=True)
    issued_at: datetime = _timestamp()
    pdf: bytes | None = Field(default=None, sa_type=LargeBinary)
    sha256: str | None = Field(default=None, max_length=64)
    rendered_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class InvoiceCounter(SQLModel, table=True):
    """A single row; its row lock serialises numbering and a rollback gives the number back."""

    __tablename__ = "invoice_counter"

    id: int = Field(default=1, primary_key=True)
    last_number: int = 0


class OrderEvent(SQLModel, table=True):
    __tablename__ = "order_event"
    __table_args__ = (UniqueConstraint("order_id", "seq"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    order_id: uuid.UUID = Field(foreign_key="order.id", ondelete="CASCADE")
    seq: int = Field(description="1, 2, 3... per order: the order's timeline.")
    type: str = Field(max_length=64)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    occurred_at: datetime = _timestamp()


class Outbox(SQLModel, table=True):
    """Work for the worker side, committed with the change that causes it; a relay publishes it."""

    __table_args__ = (
        Index("ix_outbox_unpublished", "id", postgresql_where="published_at IS NULL"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    kind: str = Field(max_length=64)
    payload: dict[str, Any] = Field(sa_type=JSONType)
    created_at: datetime = _timestamp()
    published_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class IdempotencyStatus(StrEnum):
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


class IdempotencyKey(SQLModel, table=True):
    __tablename__ = "idempotency_key"

    key: str = Field(primary_key=True, max_length=255)
    request_hash: str = Field(max_length=64)
    order_id: uuid.UUID = Field(description="Reserved at claim time, so a retry authorizes once.")
    status: IdempotencyStatus = Field(
        default=IdempotencyStatus.IN_PROGRESS, sa_type=_status(IdempotencyStatus)
    )
    response_status: int | None = None
    # JSON, not JSONB: a replay sends the first body back with its keys in their order.
    response_headers: dict[str, str] | None = Field(default=None, sa_type=JSON)
    response_body: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    created_at: datetime = _timestamp(index=True)
    locked_at: datetime = _timestamp()


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # waiting for its next attempt
    DELIVERED = "delivered"
    FAILED = "failed"  # a permanent refusal, or the retry horizon passed


class WebhookEndpoint(SQLModel, table=True):
    __tablename__ = "webhook_endpoint"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    url: str = Field(max_length=2000)
    description: str = Field(default="", max_length=500)
    event_types: list[str] = Field(default_factory=list, sa_type=JSONType)
    enabled: bool = True
    disabled_reason: str | None = Field(default=None, max_length=500)
    # Signing keys must be readable to sign with; the API shows a secret only when it is made.
    secret: str = Field(max_length=100)
    previous_secret: str | None = Field(default=None, max_length=100)
    previous_secret_expires_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    consecutive_failures: int = 0
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()


class WebhookDelivery(SQLModel, table=True):
    """One per (event, endpoint); its id is the `webhook-id` header, the same on every attempt."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        UniqueConstraint("event_id", "endpoint_id"),
        Index("ix_webhook_delivery_due", "next_attempt_at", postgresql_where="status = 'pending'"),
        Index(None, "endpoint_id", "created_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    event_id: int = Field(foreign_key="order_event.id", ondelete="CASCADE", sa_type=BigInteger)
    endpoint_id: uuid.UUID = Field(foreign_key="webhook_endpoint.id", ondelete="CASCADE")
    event_type: str = Field(max_length=64)
    status: DeliveryStatus = Field(default=DeliveryStatus.PENDING, sa_type=_status(DeliveryStatus))
    attempts: int = 0
    next_attempt_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    # Set at the first attempt (and again by a redelivery): no retry is scheduled past it.
    retry_until: datetime | None = Field(default=None, sa_type=UtcDateTime)
    # Set while an attempt runs: counts against the endpoint's in-flight cap; a crashed
    # attempt's lease simply runs out.
    in_flight_until: datetime | None = Field(default=None, sa_type=UtcDateTime)
    last_error: str | None = Field(default=None, max_length=1000)
    delivered_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    created_at: datetime = _timestamp()


class WebhookAttempt(SQLModel, table=True):
    __tablename__ = "webhook_attempt"
    __table_args__ = (Index(None, "delivery_id", "attempted_at"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    delivery_id: uuid.UUID = Field(foreign_key="webhook_delivery.id", ondelete="CASCADE")
    attempted_at: datetime = _timestamp(index=True)
    request_headers: dict[str, str] = Field(default_factory=dict, sa_type=JSONType)
    response_status: int | None = None
    response_body_excerpt: str | None = Field(default=None, max_length=2000)
    duration_ms: int
    error: str | None = Field(default=None, max_length=1000)


class AuditLog(SQLModel, table=True):
    """Who changed what through the API, and when; written after the response (BackgroundTasks)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index(None, "order_id"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    at: datetime = _timestamp(index=True)
    action: str = Field(max_length=64)
    actor: str = Field(max_length=32, description="storefront or ops")
    request_id: str | None = Field(default=None, max_length=64)
    order_id: uuid.UUID | None = None
    target: str | None = Field(default=None, max_length=200)
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)


class ImageStatus(StrEnum):
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # the API process stopped while it was resizing


class ProductImage(SQLModel, table=True):
    __tablename__ = "product_image"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    sku: str = Field(foreign_key="product.sku", max_length=64, index=True)
    status: ImageStatus = Field(default=ImageStatus.PROCESSING, sa_type=_status(ImageStatus))
    content_type: str = Field(max_length=32)
    original_bytes: int
    error: str | None = Field(default=None, max_length=500)
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()


class ProductImageVariant(SQLModel, table=True):
    __tablename__ = "product_image_variant"

    image_id: uuid.UUID = Field(
        foreign_key="product_image.id", ondelete="CASCADE", primary_key=True
    )
    size: int = Field(primary_key=True)
    width: int
    height: int
    content_type: str = Field(max_length=32)
    data: bytes = Field(sa_type=LargeBinary)
