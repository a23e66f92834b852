"""The transactional outbox: the seam between the two sides (see orders.messages)."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from orders.models.base import BigId, JSONType, UtcDateTime, timestamp


class Outbox(SQLModel, table=True):
    """Work for the worker side, committed with the change that causes it; a relay publishes it."""

    __table_args__ = (
        Index("ix_outbox_unpublished", "id", postgresql_where="published_at IS NULL"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    kind: str = Field(max_length=64)
    order_id: uuid.UUID | None = Field(default=None, index=True, description="What it is about.")
    payload: dict[str, Any] = Field(sa_type=JSONType)
    created_at: datetime = timestamp()
    published_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
