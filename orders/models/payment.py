"""The order's payment: authorized at checkout, captured or voided by the workers."""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel

from orders.models.base import BigId, status_column, timestamp


class PaymentStatus(StrEnum):
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    DECLINED = "declined"  # the capture was refused
    VOIDED = "voided"
    REFUNDED = "refunded"
    PARTIALLY_REFUNDED = "partially_refunded"


class Payment(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    order_id: uuid.UUID = Field(foreign_key="order.id", ondelete="CASCADE", unique=True)
    gateway: str = Field(max_length=32)
    authorization_id: str = Field(max_length=100, unique=True)
    status: PaymentStatus = Field(
        default=PaymentStatus.AUTHORIZED, sa_type=status_column(PaymentStatus, length=24)
    )
    amount: int
    currency: str = Field(max_length=3)
    token_fingerprint: str = Field(max_length=64, description="HMAC of the token, never the token.")
    card_brand: str | None = Field(default=None, max_length=32)
    card_last4: str | None = Field(default=None, max_length=4)
    created_at: datetime = timestamp()
    updated_at: datetime = timestamp()
