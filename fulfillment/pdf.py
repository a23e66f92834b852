"""Invoice rendering: an invoice document in, HTML or PDF out (Jinja2, then WeasyPrint). Pure: no
database, no Celery."""

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import weasyprint
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from orders.view import OrderView

TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class ShopDetails:
    name: str
    address_lines: tuple[str, ...]
    vat_id: str
    email: str


@dataclass(frozen=True)
class InvoiceDocument:
    number: str
    issued_at: datetime
    order: OrderView
    shop: ShopDetails

    def __post_init__(self) -> None:
        if self.issued_at.tzinfo is None or self.issued_at.utcoffset() is None:
            raise ValueError("issued_at must be timezone-aware")


def format_money(minor: int, currency: str) -> str:
    """(4920, "EUR") -> "EUR 49.20". Assumes 2 decimal places, so not for JPY, KWD and the like."""
    sign = "-" if minor < 0 else ""
    whole, cents = divmod(abs(minor), 100)
    return f"{currency} {sign}{whole}.{cents:02d}"


def format_rate(bps: int) -> str:
    """2000 -> "20%", 550 -> "5.5%", 1925 -> "19.25%"."""
    whole, hundredths = divmod(bps, 100)
    if hundredths == 0:
        return f"{whole}%"
    return f"{whole}.{hundredths:02d}".rstrip("0") + "%"


_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=True,
    # A typo in the template fails the render instead of printing an empty field.
    undefined=StrictUndefined,
)
_env.filters["money"] = format_money


def render_invoice_html(doc: InvoiceDocument) -> str:
    return _env.get_template("invoice.html").render(
        doc=doc,
        order=doc.order,
        address=doc.order.shipping_address,
        issued_on=doc.issued_at.date().isoformat(),
        tax_rate=format_rate(doc.order.tax_rate_bps),
    )


def render_invoice_pdf(doc: InvoiceDocument) -> bytes:
    html = weasyprint.HTML(string=render_invoice_html(doc), base_url=TEMPLATES.as_uri() + "/")
    # WeasyPrint ships no types; with no target, write_pdf returns the document as bytes.
    pdf: bytes = html.write_pdf()
    return pdf
