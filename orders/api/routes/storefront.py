"""The storefront's API: catalog, checkout, order status."""

import logging
import uuid

from fastapi import APIRouter, BackgroundTasks, Request, Response
from fastapi.responses import JSONResponse
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from orders import context, idempotency
from orders.access import access_token_for
from orders.api.aftercare import order_received_email, send_order_received
from orders.api.config import ApiSettings
from orders.api.dependencies import (
    AutocommitSessionDep,
    CatalogDep,
    GatewayDep,
    IdempotencyKeyDep,
    OrderDep,
    RegistryDep,
    SessionDep,
    SettingsDep,
)
from orders.api.problems import PROBLEM_JSON, Problem, not_found
from orders.api.schemas import (
    OrderAccepted,
    OrderCreate,
    OrderEventPublic,
    OrderPublic,
    PaymentPublic,
    ProductPublic,
)
from orders.api.telemetry import ping
from orders.checkout import Accepted, Declined, Replayed, place_order
from orders.db import run
from orders.idempotency import StoredResponse
from orders.models import CreditNote, Invoice, OrderEvent, Payment, Product
from orders.money import format_money
from orders.view import OrderView, load_view

log = logging.getLogger(__name__)
router = APIRouter()


@router.get("/products", response_model=list[ProductPublic])
async def list_products(session: SessionDep) -> list[ProductPublic]:
    products = await session.exec(select(Product).order_by(col(Product.sku)))
    return [
        ProductPublic(
            sku=p.sku,
            name=p.name,
            unit_price=p.unit_price,
            currency=p.currency,
            available=p.stock_on_hand - p.stock_reserved,
        )
        for p in products
    ]


@router.post(
    "/orders",
    status_code=202,
    response_model=OrderAccepted,
    responses={
        400: {"description": "Malformed JSON or no Idempotency-Key"},
        402: {"description": "Payment declined"},
        409: {"description": "A request with this Idempotency-Key is still running"},
        413: {"description": "Body too large"},
        422: {"description": "Invalid order; the problem names the field"},
        503: {"description": "Payment gateway or database unavailable; nothing was written"},
    },
)
async def checkout(
    body: OrderCreate,
    session: AutocommitSessionDep,
    gateway: GatewayDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    background: BackgroundTasks,
    registry: RegistryDep,
    request: Request,
    idempotency_key: IdempotencyKeyDep,
) -> Response:

    def answer(outcome: OrderView | Declined) -> StoredResponse:
        """What this request answers, stored for a replay (without the order's access token)."""
        if isinstance(outcome, Declined):
            declined = Problem(
                402,
                "payment-declined",
                "Payment declined",
                f"payment_token: {outcome.message}",
                decline_code=outcome.code,
                errors=[{"field": "payment_token", "message": outcome.message}],
                instance="/orders",
            )
            return StoredResponse(402, {"content-type": PROBLEM_JSON}, declined.body())
        accepted = OrderAccepted.of(outcome, access_token="")
        location = {"location": accepted.status_url}
        return StoredResponse(
            202,
            location | {"retry-after": str(settings.order_retry_after_s)},
            accepted.model_dump(mode="json", exclude={"access_token"}),
        )

    fingerprint = idempotency.request_hash(body.model_dump(mode="json"))
    outcome = await place_order(
        session,
        gateway,
        catalog,
        settings.checkout_rules(),
        body.to_cart(),
        idempotency_key,
        fingerprint,
        answer,
    )
    if isinstance(outcome, Accepted):
        after_checkout(outcome.order, settings, background, registry, request)
    # What was stored is what is sent (a decline's answer, rare, is built again).
    stored = outcome.response if isinstance(outcome, Accepted | Replayed) else answer(outcome)
    headers = dict(stored.headers)
    if isinstance(outcome, Replayed):
        headers["idempotent-replayed"] = "true"
    content = stored.body
    if stored.status == 202:  # the access token is derived, never stored
        token = access_token_for(uuid.UUID(content["id"]), settings.secret_key)
        content = content | {"access_token": token}
    media_type = headers.pop("content-type", "application/json")
    return JSONResponse(content, stored.status, headers=headers, media_type=media_type)


def after_checkout(
    order: OrderView,
    settings: ApiSettings,
    background: BackgroundTasks,
    registry: RegistryDep,
    request: Request,
) -> None:
    """The lighter tiers, after the response: the email (BackgroundTasks), the analytics ping
    (the asyncio registry). Lost if the process dies: acceptable for these. (The audit row went
    in with the order: one statement costs less than a task after the response, and is never
    lost.)"""
    context.order_id.set(str(order.id))
    log.info("order %s placed", order.number)
    if settings.smtp_host:
        total = format_money(order.total, order.currency)
        customer = order.customer
        email = order_received_email(settings, customer.email, customer.name, order.number, total)
        background.add_task(send_order_received, settings, email)
    if settings.analytics_url:
        data = {"order_id": str(order.id), "total": order.total, "currency": order.currency}
        ping_ = ping(request.app.state.http, settings.analytics_url, "checkout.completed", data)
        registry.spawn(ping_, name="analytics-ping")


@router.get("/orders/{order_id}", response_model=OrderPublic)
async def get_order(order: OrderDep, session: SessionDep) -> OrderPublic:
    view = await run(session, load_view, order)
    payment = (await session.exec(select(Payment).where(Payment.order_id == order.id))).first()
    links = {
        "self": f"/orders/{order.id}",
        "events": f"/orders/{order.id}/events",
        "stream": f"/orders/{order.id}/stream",
    }
    rendered = await session.exec(
        select(Invoice.id).where(
            Invoice.order_id == order.id, col(Invoice.rendered_at).is_not(None)
        )
    )
    if rendered.first() is not None:
        links["invoice"] = f"/orders/{order.id}/invoice.pdf"
    public_payment = (
        PaymentPublic.model_validate(payment, from_attributes=True) if payment else None
    )
    return OrderPublic.of(view, public_payment, links)


@router.get(
    "/orders/{order_id}/invoice.pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}, 404: {"description": "Not rendered yet"}},
)
async def get_invoice_pdf(order: OrderDep, session: SessionDep) -> Response:
    return await invoice_pdf(session, order.id)


@router.get(
    "/orders/{order_id}/credit-notes/{number}.pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}, 404: {"description": "Not rendered yet"}},
)
async def get_credit_note_pdf(order: OrderDep, number: str, session: SessionDep) -> Response:
    """A credit note of the order (`CN-000001`), once rendered."""
    return await credit_note_pdf(session, order.id, number)


async def invoice_pdf(session: AsyncSession, order_id: uuid.UUID) -> Response:
    """The order's invoice, once rendered (the storefront's and the operators' link)."""
    invoice = (await session.exec(select(Invoice).where(Invoice.order_id == order_id))).first()
    if invoice is None or invoice.pdf is None:
        raise not_found("invoice for this order yet")
    return pdf_response(invoice.pdf, f"invoice-{invoice.number}.pdf", invoice.sha256)


async def credit_note_pdf(session: AsyncSession, order_id: uuid.UUID, number: str) -> Response:
    digits = number.removeprefix("CN-")
    note = None
    if number.startswith("CN-") and digits.isdigit() and len(digits) <= 12:
        note = (
            await session.exec(
                select(CreditNote).where(
                    CreditNote.order_id == order_id, CreditNote.number == int(digits)
                )
            )
        ).first()
    if note is None or note.pdf is None:
        raise not_found("credit note of this order with this number yet")
    return pdf_response(note.pdf, f"credit-note-{number}.pdf", note.sha256)


@router.get("/orders/{order_id}/events", response_model=list[OrderEventPublic])
async def get_order_events(order: OrderDep, session: SessionDep) -> list[OrderEventPublic]:
    events = await session.exec(
        select(OrderEvent).where(OrderEvent.order_id == order.id).order_by(col(OrderEvent.seq))
    )
    return [OrderEventPublic.model_validate(e, from_attributes=True) for e in events]


def pdf_response(pdf: bytes, filename: str, sha256: str | None) -> Response:
    """A stored document, shown in the browser; it never changes, so its hash is its ETag."""
    return Response(
        pdf,
        media_type="application/pdf",
        headers={
            "content-disposition": f'inline; filename="{filename}"',
            "etag": f'"{sha256}"',
            "cache-control": "private, max-age=86400",
        },
    )
