"""The API with two benchmark-only routes, never part of the public API (`uvicorn bench.app:app`):

- POST /_bench/insert: the floor of "validate + write": parse a small body, insert one row.
- POST /_bench/bare-checkout: what no checkout with our guarantees can drop: a committed write
  before the gateway call (the claim) and one after it (the order), each one statement on an
  autocommit session as the checkout's are, the card authorized between them through the same
  client. No pricing, idempotency, events or webhooks: a checkout's least cost on this stack.
- POST /_bench/naive-order: the design the 500 ms rule argues against: a checkout that renders
  its invoice inside the request.
"""

import uuid
from datetime import UTC, datetime

from fastapi import Request
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.concurrency import run_in_threadpool

from fulfillment.pdf import invoice, render_pdf
from orders.api.app import create_app
from orders.api.config import settings
from orders.api.schemas import OrderCreate
from orders.models import AuditLog, OrderStatus, table
from orders.view import Line, OrderView
from stack.samples import SHOP

app = create_app(settings)


async def insert_row(sessions: async_sessionmaker[AsyncSession], action: str) -> None:
    async with sessions() as session:
        await session.exec(
            insert(table(AuditLog)).values(
                at=datetime.now(UTC), action=action, actor="bench", detail={}
            )
        )
        await session.commit()


@app.post("/_bench/insert", include_in_schema=False)
async def insert_one(body: OrderCreate, request: Request) -> dict[str, str]:
    await insert_row(request.app.state.sessions, "bench.insert")
    return {"status": "ok"}


@app.post("/_bench/bare-checkout", include_in_schema=False)
async def bare_checkout(body: OrderCreate, request: Request) -> dict[str, str]:
    # Each write one statement with no BEGIN and COMMIT, as the checkout's own.
    sessions = request.app.state.autocommit_sessions
    await insert_row(sessions, "bench.claim")
    await request.app.state.gateway.authorize(
        token=body.payment_token,
        amount=1000,
        currency=body.currency,
        idempotency_key=str(uuid.uuid4()),
    )
    await insert_row(sessions, "bench.order")
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
