"""Cancellations after checkout: each one the operator asked for (one Idempotency-Key, one row),
the void or refund it led to, and the credit note that documents a refund."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Index, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from orders.models.base import BigId, JSONType, UtcDateTime, status_column, timestamp


class CancellationKind(StrEnum):
    VOID = "void"  # before capture: the hold on the card is released, nothing was taken
    REFUND = "refund"  # after capture: money goes back, and a credit note says so


class CancellationStatus(StrEnum):
    REQUESTED = "requested"
    DONE = "done"


class Cancellation(SQLModel, table=True):
    """One operator request: the whole order, or some of its lines (`lines`: sku -> quantity).
    `seq` numbers an order's refunds (1, 2, ...): the gateway's idempotency key derives from it."""

    __table_args__ = (
        UniqueConstraint("order_id", "idempotency_key"),
        UniqueConstraint("order_id", "seq"),
        # The relay's stall check reads the few still requested, every STALL_CHECK_INTERVAL_S.
        Index(None, "status", "created_at"),
    )

    id: uuid.UUID = Field(primary_key=True)
    order_id: uuid.UUID = Field(foreign_key="order.id", ondelete="CASCADE", index=True)
    seq: int
    idempotency_key: str = Field(max_length=255)
    request_hash: str = Field(max_length=64)
    kind: CancellationKind = Field(sa_type=status_column(CancellationKind))
    status: CancellationStatus = Field(
        default=CancellationStatus.REQUESTED, sa_type=status_column(CancellationStatus)
    )
    whole_order: bool
    lines: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    amount: int = Field(description="Minor units refunded; 0 for a void.")
    reason: str | None = Field(default=None, max_length=500)
    gateway_refund_id: str | None = Field(default=None, max_length=100)
    created_at: datetime = timestamp()
    done_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class CreditNote(SQLModel, table=True):
    """Numbered when the refund is recorded (in that transaction), rendered after."""

    __tablename__ = "credit_note"
    # ...and the few credit notes not rendered yet.
    __table_args__ = (
        Index("ix_credit_note_unrendered", "issued_at", postgresql_where="pdf IS NULL"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    cancellation_id: uuid.UUID = Field(
        foreign_key="cancellation.id", ondelete="CASCADE", unique=True
    )
    order_id: uuid.UUID = Field(foreign_key="order.id", ondelete="CASCADE", index=True)
    number: int = Field(unique=True)
    invoice_number: int
    issued_at: datetime = timestamp()
    pdf: bytes | None = Field(default=None, sa_type=LargeBinary)
    sha256: str | None = Field(default=None, max_length=64)
    rendered_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class CreditNoteCounter(SQLModel, table=True):
    """A single row, as the invoice counter: a series of its own, without gaps."""

    __tablename__ = "credit_note_counter"

    id: int = Field(default=1, primary_key=True)
    last_number: int = 0
