"""`make docs-images`: the pictures in the README, made from the code as it is. Page 1 of a sample
invoice and of a sample credit note, rendered by the same templates the workers use, then
rasterised (pdfium, by pdfplumber) into docs/."""

import dataclasses
import io
from pathlib import Path

import pdfplumber

from fulfillment.pdf import render_pdf
from orders.view import Line
from stack.samples import make_invoice

DOCS = Path(__file__).resolve().parent.parent / "docs"

LINES = (
    Line("MUG-001", "Stoneware mug, speckled glaze, 350 ml", 2, 1_450, 2_900),
    Line("NB-A5", "Dot-grid notebook, A5, 160 pages", 1, 1_200, 1_200),
    Line("TEE-BLK-M", "Organic cotton tee, black, size M", 3, 2_200, 6_600),
    Line("BAG-TOTE", "Canvas tote bag with an inside pocket and a long strap", 1, 1_800, 1_800),
)


def main() -> None:
    DOCS.mkdir(exist_ok=True)
    invoice = make_invoice(lines=LINES, shipping_line2="Flat 3")
    note = dataclasses.replace(
        invoice,
        title="Credit note",
        number="CN-000001",
        refers_to=invoice.number,
        lines=(dataclasses.replace(LINES[0], quantity=1, line_total=1_450),),
        tax_amount=290,
    )
    for name, document in (("invoice", invoice), ("credit-note", note)):
        path = DOCS / f"{name}.png"
        with pdfplumber.open(io.BytesIO(render_pdf(document))) as pdf:
            pdf.pages[0].to_image(resolution=110, antialias=True).save(path)
        print(f"wrote {path.relative_to(DOCS.parent)}")


if __name__ == "__main__":
    main()
