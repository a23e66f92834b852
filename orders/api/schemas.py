"""Request and response shapes. Tables never leave the service as they are."""

import re
import uuid
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
)

from orders import view
from orders.checkout import Cart
from orders.models import OrderStatus, PaymentStatus
from orders.webhooks import EVENT_TYPES

# Unicode's control characters (category Cc: NUL, escapes, line breaks) and lone surrogates (Cs).
NOT_PRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def printable(value: str) -> str:
    """No control characters and no lone surrogates: they have no place in a name, an address
    or a URL, and PostgreSQL refuses NUL in text. One regular expression: a loop over the
    characters' categories cost 2.9 us for an address line, this 0.2 us."""
    if NOT_PRINTABLE.search(value):
        raise ValueError("must not contain control characters")
    return value


Printable = AfterValidator(printable)
# Free text: trimmed, not empty, printable.
Text = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), Printable
]
City = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), Printable
]
PostalCode = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20), Printable
]
Url = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=8, max_length=2000), Printable
]
Description = Annotated[str, StringConstraints(max_length=500), Printable]
SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
Sku = Annotated[str, StringConstraints(pattern=SKU_PATTERN)]
EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]
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
    city: City
    postal_code: PostalCode
    country: Country = Field(description="ISO 3166-1 alpha-2, e.g. FR")


class OrderLineCreate(StrictModel):
    sku: Sku
    quantity: StrictInt = Field(ge=1, description="Upper bound: MAX_LINE_QUANTITY")


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
    stream_url: str = Field(description="Server-Sent Events of the order's timeline, live")
    access_token: str = Field(description="Send as `Authorization: Bearer` to follow this order.")

    @classmethod
    def of(cls, order: view.OrderView, access_token: str) -> "OrderAccepted":
        links = {
            "status_url": f"/orders/{order.id}",
            "events_url": f"/orders/{order.id}/events",
            "stream_url": f"/orders/{order.id}/stream",
        }
        return cls(  # named, not `asdict(order)`: that deep-copies the lines and the addresses
            id=order.id,
            number=order.number,
            status=order.status,
            currency=order.currency,
            subtotal=order.subtotal,
            tax=order.tax,
            total=order.total,
            **links,
            access_token=access_token,
        )


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
    url: Url
    event_types: list[str] = Field(min_length=1)
    description: Description = ""
    enabled: StrictBool = True


class WebhookEndpointUpdate(StrictModel):
    url: Url | None = None
    event_types: list[str] | None = Field(default=None, min_length=1)
    description: Description | None = None
    enabled: StrictBool | None = None


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
    since: AwareDatetime
    until: AwareDatetime


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
