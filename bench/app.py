"""The API with two benchmark-only routes, never part of the public API (`uvicorn bench.app:app`):

- POST /_bench/insert: the floor of "validate + write": parse a small body, insert one row.
- POST /_bench/naive-order: the design the 500 ms rule argues against: a checkout that renders
  its invoice inside the request.
"""

from datetime import UTC, datetime

from fastapi import Request
from sqlalchemy import insert
from starlette.concurrency import run_in_threadpool

from fulfillment.invoices import InvoiceDocument, InvoiceLine, ShopDetails, render_invoice_pdf
from orders.main import create_app
from orders.models import AuditLog, table
from orders.schemas import OrderCreate

app = create_app()


@app.post("/_bench/insert", include_in_schema=False)
async def insert_one(body: OrderCreate, request: Request) -> dict[str, str]:
    async with request.app.state.sessions() as session:
        await session.exec(
            insert(table(AuditLog)).values(
                at=datetime.now(UTC), action="bench.insert", actor="bench", detail={}
            )
        )
        await session.commit()
    return {"status": "ok"}


@app.post("/_bench/naive-order", include_in_schema=False)
async def naive_order(body: OrderCreate) -> dict[str, int]:
    document = InvoiceDocument(
        number="INV-NAIVE",
        issued_at=datetime.now(UTC),
        order_number=1,
        currency=body.currency,
        customer_name=body.customer.name,
        customer_email=str(body.customer.email),
        shipping_name=body.shipping_address.name,
        shipping_line1=body.shipping_address.line1,
        shipping_line2=body.shipping_address.line2,
        shipping_city=body.shipping_address.city,
        shipping_postal_code=body.shipping_address.postal_code,
        shipping_country=body.shipping_address.country,
        lines=tuple(
            InvoiceLine(x.sku, x.sku, x.quantity, 1000, 1000 * x.quantity) for x in body.lines
        ),
        subtotal=1000,
        tax=200,
        total=1200,
        tax_rate_bps=2000,
        shop=ShopDetails("Bench shop", ("1 Street",), "GB1", "b@example.com"),
    )
    pdf = await run_in_threadpool(render_invoice_pdf, document)  # even kept off the loop: slow
    return {"pdf_bytes": len(pdf)}
