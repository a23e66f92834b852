"""The storefront's API: catalog, checkout, order status."""

import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Header, Request, Response
from fastapi.responses import JSONResponse
from sqlmodel import col, select

from orders import context, service
from orders.aftercare import order_received_email, send_order_received
from orders.dependencies import (
    AuditDep,
    GatewayDep,
    OrderDep,
    RegistryDep,
    SessionDep,
    SettingsDep,
)
from orders.models import Product
from orders.problems import Problem, not_found
from orders.schemas import (
    Customer,
    OrderAccepted,
    OrderCreate,
    OrderEventPublic,
    OrderLinePublic,
    OrderPublic,
    PaymentPublic,
    ProductPublic,
    ShippingAddress,
)
from orders.telemetry import ping

log = logging.getLogger(__name__)
router = APIRouter()

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key", max_length=255, description="A fresh UUID per checkout attempt"
    ),
]


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
async def place_order(
    cart: OrderCreate,
    session: SessionDep,
    gateway: GatewayDep,
    settings: SettingsDep,
    audit: AuditDep,
    background: BackgroundTasks,
    registry: RegistryDep,
    request: Request,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    if not idempotency_key:
        raise Problem(
            400,
            "idempotency-key-missing",
            "Idempotency-Key required",
            "Send an Idempotency-Key header (a fresh UUID per checkout) so retries are safe.",
        )
    outcome = await service.place_order(session, gateway, settings, cart, idempotency_key)
    response = outcome.response
    if response.status == 202 and not outcome.replayed:
        order = response.body
        context.order_id.set(order["id"])
        log.info("order %s placed", order["number"])
        audit("order.placed", order_id=uuid.UUID(order["id"]), detail={"total": order["total"]})
        if settings.smtp_host:
            total = f"{order['currency']} {order['total'] / 100:.2f}"
            email = order_received_email(
                settings, str(cart.customer.email), cart.customer.name, order["number"], total
            )
            background.add_task(send_order_received, settings, email)
        if settings.analytics_url:
            data = {"order_id": order["id"], "total": order["total"], "currency": order["currency"]}
            ping_ = ping(request.app.state.http, settings.analytics_url, "checkout.completed", data)
            registry.spawn(ping_, name="analytics-ping")
    headers = dict(response.headers)
    if outcome.replayed:
        headers["idempotent-replayed"] = "true"
    media_type = headers.pop("content-type", "application/json")
    return JSONResponse(response.body, response.status, headers=headers, media_type=media_type)


@router.get("/orders/{order_id}", response_model=OrderPublic)
async def get_order(order: OrderDep, session: SessionDep) -> OrderPublic:
    lines, payment = await service.order_details(session, order.id)
    links = {"self": f"/orders/{order.id}", "events": f"/orders/{order.id}/events"}
    if await service.invoice_rendered(session, order.id):
        links["invoice"] = f"/orders/{order.id}/invoice.pdf"
    return OrderPublic(
        id=order.id,
        number=order.number,
        status=order.status,
        currency=order.currency,
        subtotal=order.subtotal,
        tax=order.tax,
        total=order.total,
        customer=Customer(email=order.customer_email, name=order.customer_name),
        shipping_address=ShippingAddress(
            name=order.shipping_name,
            line1=order.shipping_line1,
            line2=order.shipping_line2,
            city=order.shipping_city,
            postal_code=order.shipping_postal_code,
            country=order.shipping_country,
        ),
        lines=[OrderLinePublic.model_validate(line, from_attributes=True) for line in lines],
        payment=PaymentPublic.model_validate(payment, from_attributes=True) if payment else None,
        created_at=order.created_at,
        updated_at=order.updated_at,
        links=links,
    )


@router.get(
    "/orders/{order_id}/invoice.pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}, 404: {"description": "Not rendered yet"}},
)
async def get_invoice_pdf(order: OrderDep, session: SessionDep) -> Response:
    invoice = await service.invoice_of(session, order.id)
    if invoice is None or invoice.pdf is None:
        raise not_found("invoice for this order yet")
    return Response(
        invoice.pdf,
        media_type="application/pdf",
        headers={
            "content-disposition": f'inline; filename="invoice-{invoice.number}.pdf"',
            "etag": f'"{invoice.sha256}"',
            "cache-control": "private, max-age=86400",
        },
    )


@router.get("/orders/{order_id}/events", response_model=list[OrderEventPublic])
async def get_order_events(order: OrderDep, session: SessionDep) -> list[OrderEventPublic]:
    events = await service.order_events(session, order.id)
    return [OrderEventPublic.model_validate(e, from_attributes=True) for e in events]
