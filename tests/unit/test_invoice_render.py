"""Invoice rendering: HTML escaping, money formatting, and PDFs whose text pypdf can read."""

import io
from datetime import UTC, datetime
from typing import Any

import pytest
from pypdf import PdfReader

from fulfillment.invoices import (
    InvoiceDocument,
    InvoiceLine,
    ShopDetails,
    format_money,
    format_rate,
    render_invoice_html,
    render_invoice_pdf,
)

SHOP = ShopDetails(
    name="Northwind Supplies Ltd",
    address_lines=("1 Harbour Street", "Bristol BS1 4RN", "United Kingdom"),
    vat_id="GB123456789",
    email="billing@northwind.example",
)


def make_line(i: int) -> InvoiceLine:
    return InvoiceLine(f"SKU-{i:03d}", f"Catalog item {i}", 2, 1_450, 2_900)


def make_invoice(**overrides: Any) -> InvoiceDocument:
    lines = overrides.pop(
        "lines", (make_line(1), InvoiceLine("NB-A5", "Dot-grid notebook", 1, 1_200, 1_200))
    )
    subtotal = sum(line.line_total for line in lines)
    tax = subtotal // 5
    values: dict[str, Any] = {
        "number": "INV-000042",
        "issued_at": datetime(2025, 3, 14, 9, 30, tzinfo=UTC),
        "order_number": 100042,
        "currency": "EUR",
        "customer_name": "Ada Lovelace",
        "customer_email": "ada@example.com",
        "shipping_name": "Ada Lovelace",
        "shipping_line1": "12 Analytical Row",
        "shipping_line2": None,
        "shipping_city": "London",
        "shipping_postal_code": "N1 9GU",
        "shipping_country": "GB",
        "lines": lines,
        "subtotal": subtotal,
        "tax": tax,
        "total": subtotal + tax,
        "tax_rate_bps": 2_000,
        "shop": SHOP,
    }
    return InvoiceDocument(**(values | overrides))


def pdf_text(pdf: bytes) -> tuple[int, str]:
    reader = PdfReader(io.BytesIO(pdf))
    return len(reader.pages), "\n".join(page.extract_text() for page in reader.pages)


def test_pdf_text_carries_number_order_and_total():
    doc = make_invoice()

    pages, text = pdf_text(render_invoice_pdf(doc))

    assert pages >= 1
    assert "INV-000042" in text
    assert "100042" in text
    assert format_money(doc.total, "EUR") == "EUR 49.20"
    assert "EUR 49.20" in text
    assert "Tax (20%)" in text


def test_sixty_lines_flow_onto_more_pages():
    lines = tuple(make_line(i) for i in range(1, 61))

    pages, text = pdf_text(render_invoice_pdf(make_invoice(lines=lines)))

    assert pages > 1
    assert "SKU-060" in text


def test_html_escapes_customer_input():
    html = render_invoice_html(make_invoice(customer_name="<script>alert(1)</script>"))

    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_optional_address_line_is_printed_only_when_present():
    assert "Flat 3" not in render_invoice_html(make_invoice())
    assert "<p>Flat 3</p>" in render_invoice_html(make_invoice(shipping_line2="Flat 3"))


def test_naive_issue_time_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        make_invoice(issued_at=datetime(2025, 3, 14, 9, 30))


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (4_920, "EUR", "EUR 49.20"),
        (5, "USD", "USD 0.05"),
        (0, "EUR", "EUR 0.00"),
        (100, "GBP", "GBP 1.00"),
        (123_456_789, "EUR", "EUR 1234567.89"),
        (-5, "USD", "USD -0.05"),
        (-4_920, "EUR", "EUR -49.20"),
    ],
)
def test_format_money(minor, currency, text):
    assert format_money(minor, currency) == text


@pytest.mark.parametrize(
    ("bps", "text"), [(2_000, "20%"), (0, "0%"), (550, "5.5%"), (1_925, "19.25%"), (5, "0.05%")]
)
def test_format_rate(bps, text):
    assert format_rate(bps) == text
