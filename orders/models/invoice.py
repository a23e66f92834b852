"""Invoices: numbered without gaps, rendered to PDF after."""

import uuid
from datetime import datetime

from sqlalchemy import LargeBinary
from sqlmodel import Field, SQLModel

from orders.models.base import BigId, UtcDateTime, timestamp


class Invoice(SQLModel, table=True):
    """Numbered first (short transaction), rendered after: a number is never lost or reused."""

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    order_id: uuid.UUID = Field(foreign_key="order.id", ondelete="CASCADE", unique=True)
    number: int = Field(unique=True)
    issued_at: datetime = timestamp()
    pdf: bytes | None = Field(default=None, sa_type=LargeBinary)
    sha256: str | None = Field(default=None, max_length=64)
    rendered_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class InvoiceCounter(SQLModel, table=True):
    """A single row; its row lock serialises numbering and a rollback gives the number back."""

    __tablename__ = "invoice_counter"

    id: int = Field(default=1, primary_key=True)
    last_number: int = 0
