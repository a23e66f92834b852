"""A placed order as checkout decided it, and its rows as the tables take them: what both ways of
writing it (orders.order_write) share."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orders import context
from orders.access import access_token_for, hash_access_token
from orders.models import OrderStatus, PaymentStatus
from orders.payments import Authorization
from orders.payments import token_fingerprint as fingerprint_of
from orders.pricing import PricedOrder
from orders.view import Address, Customer, OrderView

PLACED = "order.placed"


@dataclass(frozen=True)
class NewOrder:
    """What checkout decided, ready to be written."""

    customer: Customer
    shipping_address: Address
    priced: PricedOrder
    auth: Authorization
    gateway_name: str
    token_fingerprint: str
    tax_rate_bps: int
    access_token_hash: str

    @classmethod
    def of(
        cls,
        order_id: uuid.UUID,
        customer: Customer,
        address: Address,
        payment_token: str,
        priced: PricedOrder,
        auth: Authorization,
        gateway_name: str,
        tax_rate_bps: int,
        secret_key: str,
    ) -> "NewOrder":
        return cls(
            customer,
            address,
            priced,
            auth,
            gateway_name,
            fingerprint_of(payment_token, secret_key),
            tax_rate_bps,
            hash_access_token(access_token_for(order_id, secret_key)),
        )


def audit_row(order: OrderView, now: datetime) -> dict[str, Any]:
    return {
        "at": now,
        "action": PLACED,
        "actor": "storefront",
        "request_id": context.request_id.get(),
        "order_id": order.id,
        "detail": {"total": order.total},
    }


def view_of(order_id: uuid.UUID, number: int, new: NewOrder, now: datetime) -> OrderView:
    priced = new.priced
    return OrderView(
        id=order_id,
        number=number,
        status=OrderStatus.PENDING,
        currency=priced.currency,
        subtotal=priced.subtotal,
        tax=priced.tax,
        total=priced.total,
        tax_rate_bps=new.tax_rate_bps,
        customer=new.customer,
        shipping_address=new.shipping_address,
        lines=priced.lines,
        created_at=now,
        updated_at=now,
    )


def order_row(order_id: uuid.UUID, new: NewOrder, now: datetime, number: Any) -> dict[str, Any]:
    customer, address, priced = new.customer, new.shipping_address, new.priced
    return {
        "id": order_id,
        "number": number,
        "status": OrderStatus.PENDING,
        "customer_email": customer.email,
        "customer_name": customer.name,
        "shipping_name": address.name,
        "shipping_line1": address.line1,
        "shipping_line2": address.line2,
        "shipping_city": address.city,
        "shipping_postal_code": address.postal_code,
        "shipping_country": address.country,
        "currency": priced.currency,
        "subtotal": priced.subtotal,
        "tax": priced.tax,
        "tax_rate_bps": new.tax_rate_bps,
        "total": priced.total,
        "access_token_hash": new.access_token_hash,
        "version": 1,
        "step_attempts": 0,
        "created_at": now,
        "updated_at": now,
    }


def line_rows(order: OrderView) -> list[dict[str, Any]]:
    return [
        {
            "order_id": order.id,
            "sku": line.sku,
            "name": line.name,
            "quantity": line.quantity,
            "unit_price": line.unit_price,
            "line_total": line.line_total,
        }
        for line in order.lines
    ]


def payment_row(order: OrderView, new: NewOrder) -> dict[str, Any]:
    auth = new.auth
    return {
        "order_id": order.id,
        "gateway": new.gateway_name,
        "authorization_id": auth.id,
        "status": PaymentStatus.AUTHORIZED,
        "amount": auth.amount,
        "currency": auth.currency,
        "token_fingerprint": new.token_fingerprint,
        "card_brand": auth.card_brand,
        "card_last4": auth.card_last4,
        "created_at": order.created_at,
        "updated_at": order.created_at,
    }
