"""Outbound webhooks: endpoints, one delivery per (event, endpoint), every attempt logged."""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from orders.models.base import BigId, JSONType, UtcDateTime, status_column, timestamp


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
    created_at: datetime = timestamp()
    updated_at: datetime = timestamp()


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
    status: DeliveryStatus = Field(
        default=DeliveryStatus.PENDING, sa_type=status_column(DeliveryStatus)
    )
    attempts: int = 0
    next_attempt_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    # Set at the first attempt (and again by a redelivery): no retry is scheduled past it.
    retry_until: datetime | None = Field(default=None, sa_type=UtcDateTime)
    # Set while an attempt runs, with the claim that holds it: a worker's task claims several
    # deliveries to one endpoint and sends them one after another, so the endpoint's in-flight
    # cap counts claims (requests open at once), not deliveries. A crashed claim's lease simply
    # runs out.
    in_flight_until: datetime | None = Field(default=None, sa_type=UtcDateTime)
    claim_id: uuid.UUID | None = None
    last_error: str | None = Field(default=None, max_length=1000)
    delivered_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    created_at: datetime = timestamp()


class WebhookAttempt(SQLModel, table=True):
    __tablename__ = "webhook_attempt"
    __table_args__ = (Index(None, "delivery_id", "attempted_at"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    delivery_id: uuid.UUID = Field(foreign_key="webhook_delivery.id", ondelete="CASCADE")
    attempted_at: datetime = timestamp(index=True)
    request_headers: dict[str, str] = Field(default_factory=dict, sa_type=JSONType)
    response_status: int | None = None
    response_body_excerpt: str | None = Field(default=None, max_length=2000)
    duration_ms: int
    error: str | None = Field(default=None, max_length=1000)
