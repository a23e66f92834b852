"""Request and response shapes. Tables never leave the service as they are."""

import uuid
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from orders import view
from orders.checkout import Cart
from orders.models import OrderStatus, PaymentStatus

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Sku = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Country = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
PaymentToken = Annotated[str, StringConstraints(pattern=r"^tok_[A-Za-z0-9_]{1,100}$")]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Customer(StrictModel):
    email: EmailStr = Field(max_length=254)
    name: Text


class ShippingAddress(StrictModel):
    name: Text
    line1: Text
    line2: Text | None = None
    city: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    postal_code: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20)
    ]
    country: Country = Field(description="ISO 3166-1 alpha-2, e.g. FR")


class OrderLineCreate(StrictModel):
    sku: Sku
    quantity: int = Field(ge=1, description="Upper bound: MAX_LINE_QUANTITY")


class OrderCreate(StrictModel):
    customer: Customer
    shipping_address: ShippingAddress
    lines: list[OrderLineCreate] = Field(min_length=1)
    currency: Currency
    payment_token: PaymentToken

    def to_cart(self) -> Cart:
        address = self.shipping_address
        return Cart(
            customer=view.Customer(str(self.customer.email), self.customer.name),
            shipping_address=view.Address(
                address.name,
                address.line1,
                address.line2,
                address.city,
                address.postal_code,
                address.country,
            ),
            lines=tuple((line.sku, line.quantity) for line in self.lines),
            currency=self.currency,
            payment_token=self.payment_token,
        )


class Money(BaseModel):
    currency: str
    subtotal: int = Field(description="Minor units, tax excluded")
    tax: int
    total: int


class OrderAccepted(Money):
    id: uuid.UUID
    number: int
    status: OrderStatus
    status_url: str
    events_url: str
    access_token: str = Field(description="Send as `Authorization: Bearer` to follow this order.")

    @classmethod
    def of(cls, order: view.OrderView, access_token: str) -> "OrderAccepted":
        links = {"status_url": f"/orders/{order.id}", "events_url": f"/orders/{order.id}/events"}
        return cls(**asdict(order), **links, access_token=access_token)


class OrderLinePublic(BaseModel):
    sku: str
    name: str
    quantity: int
    unit_price: int
    line_total: int


class PaymentPublic(BaseModel):
    status: PaymentStatus
    amount: int
    card_brand: str | None
    card_last4: str | None


class OrderPublic(Money):
    id: uuid.UUID
    number: int
    status: OrderStatus
    customer: Customer
    shipping_address: ShippingAddress
    lines: list[OrderLinePublic]
    payment: PaymentPublic | None
    created_at: datetime
    updated_at: datetime
    links: dict[str, str]

    @classmethod
    def of(
        cls, order: view.OrderView, payment: PaymentPublic | None, links: dict[str, str]
    ) -> "OrderPublic":
        return cls(**asdict(order), payment=payment, links=links)


class OrderEventPublic(BaseModel):
    seq: int
    type: str
    data: dict[str, Any]
    occurred_at: datetime


class ProductPublic(BaseModel):
    sku: str
    name: str
    unit_price: int = Field(description="Minor units, tax excluded")
    currency: str
    available: int = Field(description="Units on hand and not reserved")


class WebhookEndpointCreate(StrictModel):
    url: Annotated[str, StringConstraints(strip_whitespace=True, min_length=8, max_length=2000)]
    event_types: list[str] = Field(min_length=1)
    description: str = Field(default="", max_length=500)
    enabled: bool = True


class WebhookEndpointUpdate(StrictModel):
    url: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=8, max_length=2000)]
        | None
    ) = None
    event_types: list[str] | None = Field(default=None, min_length=1)
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = None


class WebhookEndpointPublic(BaseModel):
    id: uuid.UUID
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None
    consecutive_failures: int
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime


class WebhookEndpointWithSecret(WebhookEndpointPublic):
    secret: str = Field(description="Shown once: now, or after a rotation.")


class ReplayRequest(StrictModel):
    since: datetime
    until: datetime


class WebhookAttemptPublic(BaseModel):
    attempted_at: datetime
    request_headers: dict[str, str]
    response_status: int | None
    response_body_excerpt: str | None
    duration_ms: int
    error: str | None


class WebhookDeliveryPublic(BaseModel):
    id: uuid.UUID
    webhook_id: str
    endpoint_id: uuid.UUID
    event_id: int
    event_type: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime


class WebhookDeliveryDetail(WebhookDeliveryPublic):
    attempt_log: list[WebhookAttemptPublic]


class WebhookDeliveryPage(BaseModel):
    items: list[WebhookDeliveryPublic]
    next_cursor: str | None
