"""The audit log: who changed what through the API, and when."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from orders.models.base import BigId, JSONType, timestamp


class AuditLog(SQLModel, table=True):
    """Operators' actions: written after the response (BackgroundTasks). A placed order's: with
    the order, in its statement."""

    __tablename__ = "audit_log"
    __table_args__ = (Index(None, "order_id"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    at: datetime = timestamp(index=True)
    action: str = Field(max_length=64)
    actor: str = Field(max_length=32, description="storefront or ops")
    request_id: str | None = Field(default=None, max_length=64)
    order_id: uuid.UUID | None = None
    target: str | None = Field(default=None, max_length=200)
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
