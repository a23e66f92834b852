"""Billing documents as a reader sees them: no word drawn over another on any page, every line and
the total present, the page count, amounts written per currency; HTML escaping. Page 1 of each
rendered document is kept as a PNG under .artifacts/documents/ to look at."""

import dataclasses
from datetime import datetime

import pytest

from fulfillment.pdf import format_rate, render_html, render_pdf
from orders.money import format_money
from orders.view import Line
from stack.processes import ROOT
from stack.samples import SHOP, make_invoice
from tests.pdfs import (
    column_text,
    overlapping_words,
    page_size,
    pdf_text,
    save_page_png,
    words_past_margins,
)

ARTIFACTS = ROOT / ".artifacts" / "documents"
MARGIN_PT = 16 / 25.4 * 72  # the template's 16 mm left and right

LONG_NAME = "Bartholomew Fitzwilliam Montgomery-Ravenscroft of the Extremely Long Family Trust"
UNBROKEN = "Wolfeschlegelsteinhausenbergerdorffwelchevoralternwarengewissenhaftschaferswessen"


def long_line(i: int) -> Line:
    return Line(
        f"SKU-{i:03d}-{'W' * 40}",
        f"Hand-thrown stoneware mug with a speckled glaze, dishwasher safe, number {i} of "
        f"a long series, {UNBROKEN}",
        3,
        123_456,
        370_368,
    )


def look(pdf: bytes, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    save_page_png(pdf, ARTIFACTS / f"{name}.png")


@pytest.mark.parametrize(("count", "paper", "pages"), [(1, "A4", 1), (50, "Letter", 8)])
def test_long_names_wrap_and_no_word_is_drawn_over_another(count, paper, pages):
    lines = tuple(long_line(i) for i in range(1, count + 1))
    doc = make_invoice(
        lines=lines,
        customer_name=LONG_NAME + " " + UNBROKEN,
        shipping_name=UNBROKEN + UNBROKEN,
        shipping_line2="Flat 3, the " + LONG_NAME + " Building",
        shop=dataclasses.replace(SHOP, name=LONG_NAME + " Ltd", paper=paper),
    )

    pdf = render_pdf(doc)
    look(pdf, f"invoice-{count}-lines-{paper}")

    assert overlapping_words(pdf) == []
    assert words_past_margins(pdf, MARGIN_PT) == []
    found_pages, text = pdf_text(pdf)
    assert found_pages == pages
    assert column_text(pdf, "SKU") == "".join(line.sku for line in lines)
    assert format_money(doc.total, "EUR") in text
    assert f"Page {pages} of {pages}" in text


def test_the_table_header_repeats_on_every_page():
    pdf = render_pdf(make_invoice(lines=tuple(long_line(i) for i in range(1, 51))))
    pages, text = pdf_text(pdf)

    assert pages > 1
    assert text.count("Unit price") == pages


def test_a_letter_page_is_letter_sized():
    letter = render_pdf(make_invoice(shop=dataclasses.replace(SHOP, paper="Letter")))

    assert page_size(letter) == (612, 792)  # 8.5 x 11 in
    assert page_size(render_pdf(make_invoice())) == (595, 842)  # 210 x 297 mm


def test_a_credit_note_names_its_invoice_and_totals_its_own_lines():
    invoice = make_invoice()
    refunded = invoice.order.lines[:1]
    note = make_invoice(
        title="Credit note", number="CN-000007", refers_to="INV-000042", lines=refunded
    )

    pdf = render_pdf(note)
    look(pdf, "credit-note")

    assert overlapping_words(pdf) == []
    _, text = pdf_text(pdf)
    assert "Credit note CN-000007" in text
    assert "INV-000042" in text
    assert note.subtotal == refunded[0].line_total
    assert note.total == 2_900 + 580
    assert f"Total credited {format_money(note.total, 'EUR')}" in text


def test_html_escapes_customer_input():
    html = render_html(make_invoice(customer_name="<script>alert(1)</script>"))

    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_optional_address_line_is_printed_only_when_present():
    assert "Flat 3" not in render_html(make_invoice())
    assert "<p>Flat 3</p>" in render_html(make_invoice(shipping_line2="Flat 3"))


def test_naive_issue_time_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        make_invoice(issued_at=datetime(2025, 3, 14, 9, 30))


def test_a_zero_decimal_currency_is_printed_without_decimals():
    _, text = pdf_text(render_pdf(make_invoice(currency="JPY")))

    assert "JP¥4,920" in text
    assert "." not in format_money(4_920, "JPY")


@pytest.mark.parametrize(
    ("minor", "currency", "locale", "text"),
    [
        (4_920, "EUR", "en_GB", "€49.20"),
        (5, "USD", "en_US", "$0.05"),
        (0, "EUR", "en_GB", "€0.00"),
        (123_456_789, "EUR", "en_GB", "€1,234,567.89"),
        (123_456_789, "EUR", "de_DE", "1.234.567,89\xa0€"),
        (-4_920, "GBP", "en_GB", "-£49.20"),
        (4_920, "JPY", "ja_JP", "￥4,920"),
        (4_920, "KWD", "en_GB", "KWD4.920"),
    ],
)
def test_format_money(minor, currency, locale, text):
    assert format_money(minor, currency, locale) == text


@pytest.mark.parametrize(
    ("bps", "text"), [(2_000, "20%"), (0, "0%"), (550, "5.5%"), (1_925, "19.25%"), (5, "0.05%")]
)
def test_format_rate(bps, text):
    assert format_rate(bps) == text
