"""One order as everyone outside the tables sees it: the 202 and the storefront's GET, the snapshot
in every event (and so in every webhook), the invoice. Value objects, built from the rows once."""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy import select as sql_select
from sqlmodel import Session

from orders.models import Order, OrderLine, OrderStatus, Payment, table


@dataclass(frozen=True)
class Customer:
    email: str
    name: str


@dataclass(frozen=True)
class Address:
    name: str
    line1: str
    line2: str | None
    city: str
    postal_code: str
    country: str


@dataclass(frozen=True)
class Line:
    sku: str
    name: str
    quantity: int
    unit_price: int
    line_total: int


@dataclass(frozen=True)
class OrderView:
    id: uuid.UUID
    number: int
    status: OrderStatus
    currency: str
    subtotal: int
    tax: int
    total: int
    tax_rate_bps: int
    customer: Customer
    shipping_address: Address
    lines: tuple[Line, ...]  # in the order the customer listed them
    created_at: datetime
    updated_at: datetime

    def snapshot(self, invoice_url: str | None = None) -> dict[str, Any]:
        """What a webhook receiver learns about the order at the moment of an event."""
        snapshot: dict[str, Any] = {
            "id": str(self.id),
            "number": self.number,
            "status": self.status,
            "currency": self.currency,
            "subtotal": self.subtotal,
            "tax": self.tax,
            "total": self.total,
            "customer": {"email": self.customer.email, "name": self.customer.name},
            "lines": [
                {
                    "sku": line.sku,
                    "name": line.name,
                    "quantity": line.quantity,
                    "unit_price": line.unit_price,
                    "line_total": line.line_total,
                }
                for line in self.lines
            ],
        }
        if invoice_url:
            snapshot["invoice_url"] = invoice_url
        return snapshot


def order_view(order: Order, lines: Iterable[OrderLine | Line]) -> OrderView:
    assert order.number is not None
    return OrderView(
        id=order.id,
        number=order.number,
        status=order.status,
        currency=order.currency,
        subtotal=order.subtotal,
        tax=order.tax,
        total=order.total,
        tax_rate_bps=order.tax_rate_bps,
        customer=Customer(order.customer_email, order.customer_name),
        shipping_address=Address(
            order.shipping_name,
            order.shipping_line1,
            order.shipping_line2,
            order.shipping_city,
            order.shipping_postal_code,
            order.shipping_country,
        ),
        lines=tuple(Line(x.sku, x.name, x.quantity, x.unit_price, x.line_total) for x in lines),
        created_at=order.created_at,
        updated_at=order.updated_at,
    )


@cache
def _lines(with_authorization: bool) -> Any:
    """The lines of the order `lines_order_id`, and with each the payment's authorization if
    asked: built once."""
    lines, payments = table(OrderLine), table(Payment)
    order_id = bindparam("lines_order_id", type_=lines.c.order_id.type)
    columns = line_columns()
    if with_authorization:
        authorization = sql_select(payments.c.authorization_id).where(
            payments.c.order_id == order_id
        )
        columns.append(authorization.scalar_subquery())
    return sql_select(*columns).where(lines.c.order_id == order_id).order_by(lines.c.id)


def line_columns() -> list[Any]:
    """A line's columns, in the order `Line` takes them."""
    lines = table(OrderLine)
    return [lines.c.sku, lines.c.name, lines.c.quantity, lines.c.unit_price, lines.c.line_total]


def load_lines(session: Session, order_id: uuid.UUID) -> tuple[Line, ...]:
    """An order's lines, in the order they were written (they never change after checkout)."""
    rows = session.exec(_lines(False), params={"lines_order_id": order_id})
    return tuple(Line(*row) for row in rows)


@dataclass(frozen=True)
class Placed:
    """What checkout wrote for the fulfilment steps and no step changes: the lines and the
    payment's authorization."""

    lines: tuple[Line, ...]
    authorization_id: str


def load_placed(session: Session, order_id: uuid.UUID) -> Placed:
    """The lines and the authorization, in one statement."""
    rows = session.exec(_lines(True), params={"lines_order_id": order_id}).all()
    return Placed(tuple(Line(*row[:5]) for row in rows), rows[0][5])


def load_view(session: Session, order: Order) -> OrderView:
    return order_view(order, load_lines(session, order.id))


def invoice_number_text(number: int) -> str:
    """An invoice's number as printed and shown: INV-000001."""
    return f"INV-{number:06d}"
