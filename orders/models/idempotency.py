"""Idempotency-Key records: the claim, and the response a replay sends back."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON
from sqlmodel import Field, SQLModel

from orders.models.base import status_column, timestamp


class IdempotencyStatus(StrEnum):
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


class IdempotencyKey(SQLModel, table=True):
    __tablename__ = "idempotency_key"

    key: str = Field(primary_key=True, max_length=255)
    request_hash: str = Field(max_length=64)
    order_id: uuid.UUID = Field(description="Reserved at claim time, so a retry authorizes once.")
    status: IdempotencyStatus = Field(
        default=IdempotencyStatus.IN_PROGRESS, sa_type=status_column(IdempotencyStatus)
    )
    response_status: int | None = None
    # JSON, not JSONB: a replay sends the first body back with its keys in their order.
    response_headers: dict[str, str] | None = Field(default=None, sa_type=JSON)
    response_body: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    created_at: datetime = timestamp(index=True)
    locked_at: datetime = timestamp()
