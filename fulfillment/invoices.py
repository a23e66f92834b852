"""render_invoice, the third step: number the invoice (once, without gaps), render its PDF, store
it. Numbering and storing are two short transactions; the render between them holds no lock."""

import hashlib
import os
import signal
import uuid
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Insert, Update, bindparam, insert, update
from sqlalchemy import select as sql_select
from sqlmodel import Session, SQLModel, col

from fulfillment import notify
from fulfillment.config import WorkerSettings
from fulfillment.pdf import BillingDocument, ShopDetails, invoice, render_pdf
from fulfillment.runner import Context, Handover, count_delivery, finish
from orders.models import Invoice, InvoiceCounter, Order, OrderLine, table, utcnow
from orders.states import Next, Step
from orders.view import Line, invoice_number_text, line_columns, order_view


def next_number(session: Session, counter_model: type[SQLModel]) -> int:
    """The next number of a gapless series (invoices, credit notes): its one counter row is
    locked by the UPDATE until the caller's transaction ends, and a rollback gives the number back."""
    number: int = session.exec(_take_number(counter_model)).scalar_one()
    return number


@cache
def _take_number(counter_model: type[SQLModel]) -> Update:
    counter = table(counter_model)
    return (
        update(counter)
        .where(counter.c.id == 1)
        .values(last_number=counter.c.last_number + 1)
        .returning(counter.c.last_number)
    )


def render_invoice(ctx: Context, order_id: uuid.UUID, _: Handover | None = None) -> Next:
    decision, document = start_render(ctx, order_id)
    if document is None:
        return decision
    if ctx.settings.crash_on_sku and any(
        line.sku == ctx.settings.crash_on_sku for line in document.order.lines
    ):
        os.kill(os.getpid(), signal.SIGKILL)  # fault injection: see WorkerSettings.crash_on_sku
    pdf = render_pdf(document)

    def store(session: Session, order: Order) -> dict[str, str]:
        sha256 = hashlib.sha256(pdf).hexdigest()
        params = {"store_order_id": order_id, "store_pdf": pdf, "sha": sha256, "now": utcnow()}
        session.exec(_store(), params=params)
        return {"invoice_number": document.number}

    lines = document.order.lines
    return finish(ctx, order_id, Step.RENDER_INVOICE, store, lines, then=notify.completion(ctx))


def start_render(ctx: Context, order_id: uuid.UUID) -> tuple[Next, BillingDocument | None]:
    """Count the delivery and give the order its invoice number, in one transaction committed
    before the render: the counter's row lock is held for milliseconds, and a rolled-back
    transaction gives its number back, so numbers have no gaps. A redelivery gets the number
    given before. The document to render, if there is work to do."""
    with ctx.sessions() as session:
        decision = count_delivery(ctx, session, order_id, Step.RENDER_INVOICE)
        if decision is not Next.RUN:
            session.commit()
            return decision, None
        # the order (locked by count_delivery), its invoice if any, and its lines
        rows = session.exec(_order_invoice_and_lines(), params={"oi_order_id": order_id}).all()
        order, row = rows[0][0], rows[0][1]
        if row is None:
            issued_at = utcnow()
            number = number_invoice(session, order_id, issued_at)
        else:
            number, issued_at = row.number, row.issued_at
        view = order_view(order, tuple(Line(*line[2:]) for line in rows))
        session.commit()
    document = invoice(invoice_number_text(number), issued_at, view, shop(ctx.settings))
    return decision, document


def number_invoice(session: Session, order_id: uuid.UUID, issued_at: datetime) -> int:
    """The order's invoice, with the next number of the series, in the caller's transaction. On
    PostgreSQL one statement (the counter's UPDATE a data-modifying CTE of the INSERT); SQLite,
    which has none, runs the two in turn."""
    if session.get_bind().dialect.name != "postgresql":
        number = next_number(session, InvoiceCounter)
        values = {"order_id": order_id, "number": number, "issued_at": issued_at}
        session.exec(insert(table(Invoice)).values(values))
        return number
    params = {"inv_order_id": order_id, "inv_issued_at": issued_at}
    numbered: int = session.exec(_number_invoice(), params=params).scalar_one()
    return numbered


@cache
def _number_invoice() -> Insert:
    invoices, taken = table(Invoice), _take_number(InvoiceCounter).cte("taken")
    values = sql_select(
        bindparam("inv_order_id", type_=invoices.c.order_id.type),
        taken.c.last_number,
        bindparam("inv_issued_at", type_=invoices.c.issued_at.type),
    )
    columns = ["order_id", "number", "issued_at"]
    return insert(invoices).from_select(columns, values).returning(invoices.c.number)


@cache
def _order_invoice_and_lines() -> Any:
    """A row per line of the order: the order, its invoice (None before one is numbered) and the
    line's columns. Built once."""
    lines = table(OrderLine)
    order_id = bindparam("oi_order_id", type_=table(Order).c.id.type)
    return (
        sql_select(Order, Invoice, *line_columns())
        .outerjoin(Invoice, col(Invoice.order_id) == col(Order.id))
        .join(lines, lines.c.order_id == col(Order.id))
        .where(col(Order.id) == order_id)
        .order_by(lines.c.id)
    )


@cache
def _store() -> Update:
    """The rendered PDF stored, unless a delivery before stored it."""
    invoices = table(Invoice)
    return (
        update(invoices)
        .where(
            invoices.c.order_id == bindparam("store_order_id", type_=invoices.c.order_id.type),
            invoices.c.pdf.is_(None),
        )
        .values(
            pdf=bindparam("store_pdf", type_=invoices.c.pdf.type),
            sha256=bindparam("sha", type_=invoices.c.sha256.type),
            rendered_at=bindparam("now", type_=invoices.c.rendered_at.type),
        )
    )


def shop(settings: WorkerSettings) -> ShopDetails:
    return ShopDetails(
        name=settings.shop_name,
        address_lines=tuple(part.strip() for part in settings.shop_address.split(",")),
        vat_id=settings.shop_vat_id,
        email=settings.shop_email,
        paper=settings.invoice_paper,
        locale=settings.invoice_locale,
    )
