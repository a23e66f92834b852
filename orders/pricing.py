"""Pricing rules: plain Python, no framework. Client prices are never read; the catalog decides."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from orders.view import Line


@dataclass(frozen=True)
class CatalogPrice:
    name: str
    unit_price: int
    currency: str


@dataclass(frozen=True)
class PricedOrder:
    currency: str
    lines: tuple[Line, ...]
    subtotal: int
    tax: int
    total: int


class PricingError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class OrderLimits:
    max_lines: int
    max_quantity: int


def tax_on(subtotal: int, rate_bps: int) -> int:
    """Tax in minor units, rounded half up (2000 bps = 20 %)."""
    return (subtotal * rate_bps + 5_000) // 10_000


def check_cart(lines: Sequence[tuple[str, int]], limits: OrderLimits) -> None:
    """What can be refused before the catalog is read."""
    if len(lines) > limits.max_lines:
        raise PricingError("lines", f"at most {limits.max_lines} lines per order")
    seen: set[str] = set()
    for i, (sku, quantity) in enumerate(lines):
        if quantity > limits.max_quantity:
            raise PricingError(f"lines[{i}].quantity", f"at most {limits.max_quantity} per line")
        if sku in seen:
            raise PricingError(f"lines[{i}].sku", f"{sku} appears twice; send one line per SKU")
        seen.add(sku)


def price_order(
    lines: Sequence[tuple[str, int]],
    currency: str,
    catalog: Mapping[str, CatalogPrice],
    tax_rate_bps: int,
) -> PricedOrder:
    priced = []
    for i, (sku, quantity) in enumerate(lines):
        item = catalog.get(sku)
        if item is None:
            raise PricingError(f"lines[{i}].sku", f"unknown SKU {sku}")
        if item.currency != currency:
            raise PricingError("currency", f"{sku} is sold in {item.currency}, not {currency}")
        priced.append(Line(sku, item.name, quantity, item.unit_price, item.unit_price * quantity))
    subtotal = sum(line.line_total for line in priced)
    tax = tax_on(subtotal, tax_rate_bps)
    return PricedOrder(currency, tuple(priced), subtotal, tax, subtotal + tax)
