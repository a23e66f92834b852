"""Checkout and order reads: load, call the rules, commit. Routes stay thin over this."""

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass

from sqlalchemy import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from orders import context, events, idempotency
from orders.config import Settings
from orders.events import order_snapshot
from orders.idempotency import Claimed, IdempotencyPolicy, StoredResponse
from orders.models import (
    Invoice,
    Order,
    OrderEvent,
    OrderLine,
    OrderStatus,
    Outbox,
    Payment,
    PaymentStatus,
    Product,
    next_order_number,
    table,
    utcnow,
)
from orders.payments import (
    Authorization,
    GatewayUnavailable,
    InvalidPaymentToken,
    PaymentDeclined,
    PaymentGateway,
    token_fingerprint,
)
from orders.pricing import (
    CatalogPrice,
    OrderLimits,
    PricedOrder,
    PricingError,
    check_cart,
    price_order,
)
from orders.problems import PROBLEM_JSON, Problem, invalid, service_unavailable
from orders.schemas import OrderAccepted, OrderCreate
from orders.states import FULFIL_ORDER, Step


@dataclass(frozen=True)
class CheckoutOutcome:
    response: StoredResponse
    replayed: bool


def access_token_for(order_id: uuid.UUID, secret_key: str) -> str:
    """Derived, not stored: a replayed 202 can hand it out again while only its hash is kept."""
    digest = hmac.new(secret_key.encode(), b"order-access:" + order_id.bytes, hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def hash_access_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def with_access_token(response: StoredResponse, secret_key: str) -> StoredResponse:
    """The stored 202 body has no token in it; put the derived one back."""
    if response.status != 202:
        return response
    token = access_token_for(uuid.UUID(response.body["id"]), secret_key)
    return StoredResponse(
        response.status, response.headers, response.body | {"access_token": token}
    )


async def place_order(
    session: AsyncSession, gateway: PaymentGateway, settings: Settings, cart: OrderCreate, key: str
) -> CheckoutOutcome:
    lines = [(line.sku, line.quantity) for line in cart.lines]
    try:
        check_cart(lines, OrderLimits(settings.max_order_lines, settings.max_line_quantity))
    except PricingError as exc:
        raise invalid(exc.field, exc.message) from exc

    # Read in the claim's transaction, whose commit gives the connection back to the pool: no
    # connection is held while the gateway answers.
    catalog = await _catalog_prices(session, [sku for sku, _ in lines])
    fingerprint = idempotency.request_hash(cart.model_dump(mode="json"))
    claim = await idempotency.claim(session, key, fingerprint, IdempotencyPolicy.of(settings))
    if isinstance(claim, StoredResponse):
        return CheckoutOutcome(with_access_token(claim, settings.secret_key), replayed=True)

    try:
        priced = price_order(lines, cart.currency, catalog, settings.tax_rate_bps)
    except PricingError as exc:
        await idempotency.forget(session, key)
        raise invalid(exc.field, exc.message) from exc
    try:
        response = await _authorize_and_write(session, gateway, settings, cart, priced, claim, key)
    except InvalidPaymentToken as exc:  # refused outright: nothing to find again on a retry
        await idempotency.forget(session, key)
        raise invalid("payment_token", str(exc)) from exc
    except BaseException:
        await idempotency.release(session, key)
        raise
    return CheckoutOutcome(with_access_token(response, settings.secret_key), replayed=False)


async def _authorize_and_write(
    session: AsyncSession,
    gateway: PaymentGateway,
    settings: Settings,
    cart: OrderCreate,
    priced: PricedOrder,
    claim: Claimed,
    key: str,
) -> StoredResponse:
    try:
        auth = await gateway.authorize(
            token=cart.payment_token,
            amount=priced.total,
            currency=priced.currency,
            idempotency_key=f"order-{claim.order_id}-authorize",
        )
    except GatewayUnavailable as exc:
        raise service_unavailable(
            "The payment gateway did not answer; nothing was charged. Retry with the same key.",
            settings.unavailable_retry_after_s,
        ) from exc
    except PaymentDeclined as exc:
        declined = Problem(
            402,
            "payment-declined",
            "Payment declined",
            f"payment_token: {exc.message}",
            decline_code=exc.code,
            errors=[{"field": "payment_token", "message": exc.message}],
            instance="/orders",
        )
        response = StoredResponse(402, {"content-type": PROBLEM_JSON}, declined.body())
        await idempotency.record_response(session, key, response)
        await session.commit()
        return response

    order_id = claim.order_id
    number = await _write_order(session, order_id, cart, priced, auth, gateway.name, settings)
    body = OrderAccepted(
        id=order_id,
        number=number,
        status=OrderStatus.PENDING,
        currency=priced.currency,
        subtotal=priced.subtotal,
        tax=priced.tax,
        total=priced.total,
        status_url=f"/orders/{order_id}",
        events_url=f"/orders/{order_id}/events",
        access_token="",
    ).model_dump(mode="json", exclude={"access_token"})
    response = StoredResponse(
        202,
        {"location": f"/orders/{order_id}", "retry-after": str(settings.order_retry_after_s)},
        body,
    )
    await idempotency.record_response(session, key, response)
    await session.commit()
    return response


async def _catalog_prices(session: AsyncSession, skus: list[str]) -> dict[str, CatalogPrice]:
    rows = await session.exec(
        select(Product.sku, Product.name, Product.unit_price, Product.currency).where(
            col(Product.sku).in_(skus)
        )
    )
    return {sku: CatalogPrice(name, price, currency) for sku, name, price, currency in rows}


async def _write_order(
    session: AsyncSession,
    order_id: uuid.UUID,
    cart: OrderCreate,
    priced: PricedOrder,
    auth: Authorization,
    gateway_name: str,
    settings: Settings,
) -> int:
    """Order, lines, payment, first event and outbox row: one statement each, in the caller's
    transaction. Core inserts, not ORM objects: this is the hot path of checkout."""
    now = utcnow()
    address = cart.shipping_address
    number: int = (
        await session.exec(
            insert(table(Order))
            .values(
                id=order_id,
                number=next_order_number(session.sync_session.get_bind().dialect.name),
                status=OrderStatus.PENDING,
                customer_email=str(cart.customer.email),
                customer_name=cart.customer.name,
                shipping_name=address.name,
                shipping_line1=address.line1,
                shipping_line2=address.line2,
                shipping_city=address.city,
                shipping_postal_code=address.postal_code,
                shipping_country=address.country,
                currency=priced.currency,
                subtotal=priced.subtotal,
                tax=priced.tax,
                tax_rate_bps=settings.tax_rate_bps,
                total=priced.total,
                access_token_hash=hash_access_token(
                    access_token_for(order_id, settings.secret_key)
                ),
                version=1,
                created_at=now,
                updated_at=now,
            )
            .returning(col(Order.number))
        )
    ).scalar_one()
    await session.exec(
        insert(table(OrderLine)).values(
            [
                {
                    "order_id": order_id,
                    "sku": line.sku,
                    "name": line.name,
                    "quantity": line.quantity,
                    "unit_price": line.unit_price,
                    "line_total": line.line_total,
                }
                for line in priced.lines
            ]
        )
    )
    await session.exec(
        insert(table(Payment)).values(
            order_id=order_id,
            gateway=gateway_name,
            authorization_id=auth.id,
            status=PaymentStatus.AUTHORIZED,
            amount=auth.amount,
            currency=auth.currency,
            token_fingerprint=token_fingerprint(cart.payment_token, settings.secret_key),
            card_brand=auth.card_brand,
            card_last4=auth.card_last4,
            created_at=now,
            updated_at=now,
        )
    )
    snapshot = order_snapshot(
        order_id=order_id,
        number=number,
        status=OrderStatus.PENDING,
        currency=priced.currency,
        subtotal=priced.subtotal,
        tax=priced.tax,
        total=priced.total,
        customer_email=str(cart.customer.email),
        customer_name=cart.customer.name,
        lines=[(p.sku, p.name, p.quantity, p.unit_price, p.line_total) for p in priced.lines],
    )
    await events.record(session, order_id, "order.placed", {"order": snapshot})
    await session.exec(
        insert(table(Outbox)).values(
            kind=FULFIL_ORDER,
            payload={
                "order_id": str(order_id),
                "from_step": Step.RESERVE_INVENTORY,
                "request_id": context.request_id.get(),
            },
            created_at=now,
        )
    )
    return number


async def find_order(session: AsyncSession, order_id: uuid.UUID, token: str | None) -> Order | None:
    """The order if `token` is its access token; a wrong token looks like an unknown id."""
    order = await session.get(Order, order_id)
    if order is None or token is None:
        return None
    if not hmac.compare_digest(order.access_token_hash, hash_access_token(token)):
        return None
    return order


async def order_details(
    session: AsyncSession, order_id: uuid.UUID
) -> tuple[list[OrderLine], Payment | None]:
    lines = await session.exec(
        select(OrderLine).where(OrderLine.order_id == order_id).order_by(col(OrderLine.id))
    )
    payment = await session.exec(select(Payment).where(Payment.order_id == order_id))
    return list(lines), payment.first()


async def invoice_of(session: AsyncSession, order_id: uuid.UUID) -> Invoice | None:
    result = await session.exec(select(Invoice).where(Invoice.order_id == order_id))
    return result.first()


async def invoice_rendered(session: AsyncSession, order_id: uuid.UUID) -> bool:
    """Without loading the PDF."""
    result = await session.exec(
        select(Invoice.id).where(
            Invoice.order_id == order_id, col(Invoice.rendered_at).is_not(None)
        )
    )
    return result.first() is not None


async def order_events(session: AsyncSession, order_id: uuid.UUID) -> list[OrderEvent]:
    rows = await session.exec(
        select(OrderEvent).where(OrderEvent.order_id == order_id).order_by(col(OrderEvent.seq))
    )
    return list(rows)
