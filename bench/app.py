"""The API with two benchmark-only routes, never part of the public API (`uvicorn bench.app:app`):

- POST /_bench/insert: the floor of "validate + write": parse a small body, insert one row.
- POST /_bench/naive-order: the design the 500 ms rule argues against: a checkout that renders
  its invoice inside the request.
"""

import uuid
from datetime import UTC, datetime

from fastapi import Request
from sqlalchemy import insert
from starlette.concurrency import run_in_threadpool

from fulfillment.pdf import invoice, render_pdf
from orders.api.app import create_app
from orders.api.config import settings
from orders.api.schemas import OrderCreate
from orders.models import AuditLog, OrderStatus, table
from orders.view import Line, OrderView
from stack.samples import SHOP

app = create_app(settings)


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
    cart, now = body.to_cart(), datetime.now(UTC)
    lines = tuple(Line(sku, sku, quantity, 1000, 1000 * quantity) for sku, quantity in cart.lines)
    subtotal = sum(line.line_total for line in lines)
    order = OrderView(
        id=uuid.uuid4(),
        number=1,
        status=OrderStatus.PENDING,
        currency=cart.currency,
        subtotal=subtotal,
        tax=subtotal // 5,
        total=subtotal + subtotal // 5,
        tax_rate_bps=2000,
        customer=cart.customer,
        shipping_address=cart.shipping_address,
        lines=lines,
        created_at=now,
        updated_at=now,
    )
    document = invoice("INV-NAIVE", now, order, SHOP)
    pdf = await run_in_threadpool(render_pdf, document)  # even kept off the loop: slow
    return {"pdf_bytes": len(pdf)}
