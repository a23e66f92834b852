"""Sample data for the demo, the bench and the tests: a cart as a storefront sends it, and an
invoice document as the render step builds it."""

import uuid
from datetime import UTC, datetime
from typing import Any

from fulfillment.pdf import BillingDocument, ShopDetails
from orders.models import OrderStatus
from orders.stock_import import COLUMNS
from orders.view import Address, Customer, Line, OrderView

SHOP = ShopDetails(
    name="Northwind Supplies Ltd",
    address_lines=("1 Harbour Street", "Bristol BS1 4RN", "United Kingdom"),
    vat_id="GB123456789",
    email="billing@northwind.example",
)


def make_cart(**overrides: Any) -> dict[str, Any]:
    """Ada's cart: two mugs and a notebook from the sample catalog, €49.20 with tax."""
    cart: dict[str, Any] = {
        "customer": {"email": "ada@example.com", "name": "Ada Lovelace"},
        "shipping_address": {
            "name": "Ada Lovelace",
            "line1": "12 Analytical Row",
            "city": "London",
            "postal_code": "N1 9GU",
            "country": "GB",
        },
        "lines": [{"sku": "MUG-001", "quantity": 2}, {"sku": "NB-A5", "quantity": 1}],
        "currency": "EUR",
        "payment_token": "tok_visa",
    }
    return cart | overrides


def make_line(i: int) -> Line:
    return Line(f"SKU-{i:03d}", f"Catalog item {i}", 2, 1_450, 2_900)


def make_invoice(**overrides: Any) -> BillingDocument:
    """Invoice INV-000042 for order 100042; keyword arguments replace fields of the document or,
    for `lines`, `currency`, `customer_name`, `shipping_name` and `shipping_line2`, of its
    order."""
    lines = overrides.pop(
        "lines", (make_line(1), Line("NB-A5", "Dot-grid notebook", 1, 1_200, 1_200))
    )
    subtotal = sum(line.line_total for line in lines)
    tax = subtotal // 5
    issued_at = overrides.pop("issued_at", datetime(2025, 3, 14, 9, 30, tzinfo=UTC))
    order = OrderView(
        id=uuid.UUID(int=42),
        number=100042,
        status=OrderStatus.PAID,
        currency=overrides.pop("currency", "EUR"),
        subtotal=subtotal,
        tax=tax,
        total=subtotal + tax,
        tax_rate_bps=2_000,
        customer=Customer("ada@example.com", overrides.pop("customer_name", "Ada Lovelace")),
        shipping_address=Address(
            overrides.pop("shipping_name", "Ada Lovelace"),
            "12 Analytical Row",
            overrides.pop("shipping_line2", None),
            "London",
            "N1 9GU",
            "GB",
        ),
        lines=tuple(lines),
        created_at=issued_at,
        updated_at=issued_at,
    )
    values: dict[str, Any] = {
        "title": "Invoice",
        "number": "INV-000042",
        "issued_at": issued_at,
        "order": order,
        "shop": SHOP,
    }
    return BillingDocument(**(values | overrides))


STOCK_HEADER = ",".join(COLUMNS) + "\n"


def stock_rows(prefix: str, start: int, stop: int, restock: int = 0) -> str:
    """Lines `start` to `stop` - 1 of a generated stock file: SKUs `{prefix}-000000001` on; a
    `restock` from 1 to 499 gives every line another stock level."""
    return "".join(
        f"{prefix}-{n:09d},Product {n} from the warehouse feed,{100 + n % 9_900},EUR,"
        f"{(n + restock) % 500}\n"
        for n in range(start, stop)
    )
