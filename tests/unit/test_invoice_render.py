"""Invoice rendering: HTML escaping, money formatting, and PDFs whose text pypdf can read."""

from datetime import datetime

import pytest

from fulfillment.pdf import format_money, format_rate, render_invoice_html, render_invoice_pdf
from stack.samples import make_invoice, make_line
from tests.helpers import pdf_text


def test_pdf_text_carries_number_order_and_total():
    doc = make_invoice()

    pages, text = pdf_text(render_invoice_pdf(doc))

    assert pages >= 1
    assert "INV-000042" in text
    assert "100042" in text
    assert format_money(doc.order.total, "EUR") == "EUR 49.20"
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
