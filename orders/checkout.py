"""Checkout: price the cart from the catalog, authorize the card, write the order in one
transaction. The outcome is told in the shop's terms (accepted, declined, replayed); the API turns
it into HTTP, and gives checkout the answer to store for replays of the same Idempotency-Key."""

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import insert
from sqlmodel import Session, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from orders import events, idempotency
from orders.access import access_token_for, hash_access_token
from orders.db import run
from orders.idempotency import Claimed, IdempotencyPolicy, StoredResponse
from orders.messages import RunStep, VoidAuthorization, enqueue
from orders.models import (
    Order,
    OrderLine,
    OrderStatus,
    Payment,
    PaymentStatus,
    Product,
    next_order_number,
    table,
    utcnow,
)
from orders.payments import Authorization, Authorizer, InvalidPaymentToken, PaymentDeclined
from orders.payments import token_fingerprint as fingerprint_of
from orders.pricing import (
    CatalogPrice,
    OrderLimits,
    PricedOrder,
    PricingError,
    check_cart,
    price_order,
)
from orders.view import Address, Customer, OrderView

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cart:
    customer: Customer
    shipping_address: Address
    lines: tuple[tuple[str, int], ...]  # (sku, quantity), as the customer listed them
    currency: str
    payment_token: str


@dataclass(frozen=True)
class CheckoutRules:
    limits: OrderLimits
    tax_rate_bps: int
    idempotency: IdempotencyPolicy
    secret_key: str


@dataclass(frozen=True)
class Accepted:
    order: OrderView


@dataclass(frozen=True)
class Declined:
    code: str
    message: str


@dataclass(frozen=True)
class Replayed:
    """The key was used before with this request: what was answered then."""

    response: StoredResponse


Answer = Callable[[Accepted | Declined], StoredResponse]


async def place_order(
    session: AsyncSession,
    gateway: Authorizer,
    rules: CheckoutRules,
    cart: Cart,
    key: str,
    fingerprint: str,
    answer: Answer,
) -> Accepted | Declined | Replayed:
    """Raises PricingError or InvalidPaymentToken for a cart to correct, GatewayUnavailable when
    nothing is known to have been charged, KeyReused or KeyInUse for the Idempotency-Key."""
    check_cart(cart.lines, rules.limits)
    # Read in the claim's transaction, whose commit gives the connection back to the pool: no
    # connection is held while the gateway answers.
    catalog = await run(session, catalog_prices, [sku for sku, _ in cart.lines])
    claim = await run(session, idempotency.claim, key, fingerprint, rules.idempotency)
    if isinstance(claim, StoredResponse):
        return Replayed(claim)
    try:
        priced = price_order(cart.lines, cart.currency, catalog, rules.tax_rate_bps)
        auth = await gateway.authorize(
            token=cart.payment_token,
            amount=priced.total,
            currency=priced.currency,
            idempotency_key=f"order-{claim.order_id}-authorize",
        )
    except PaymentDeclined as declined:
        outcome = Declined(declined.code, declined.message)
        await run(session, _answered, key, answer(outcome))
        return outcome
    except (PricingError, InvalidPaymentToken):  # a cart to correct: nothing left the building
        await run(session, idempotency.forget, key)
        raise
    except BaseException:  # maybe authorized: a retry with the key asks the gateway again
        await run(session, idempotency.release, key)
        raise
    return await run(session, _accept, claim, cart, priced, auth, gateway.name, rules, key, answer)


def catalog_prices(session: Session, skus: list[str]) -> dict[str, CatalogPrice]:
    rows = session.exec(
        select(Product.sku, Product.name, Product.unit_price, Product.currency).where(
            col(Product.sku).in_(skus)
        )
    )
    return {sku: CatalogPrice(name, price, currency) for sku, name, price, currency in rows}


def _answered(session: Session, key: str, response: StoredResponse) -> None:
    idempotency.record_response(session, key, response)
    session.commit()


def _accept(
    session: Session,
    claim: Claimed,
    cart: Cart,
    priced: PricedOrder,
    auth: Authorization,
    gateway_name: str,
    rules: CheckoutRules,
    key: str,
    answer: Answer,
) -> Accepted:
    """The order, its lines, payment, first event and outbox message, and the stored answer: one
    transaction. Core inserts, not ORM objects: this is the hot path of checkout."""
    try:
        order = write_order(session, claim.order_id, cart, priced, auth, gateway_name, rules)
        accepted = Accepted(order)
        idempotency.record_response(session, key, answer(accepted))
        session.commit()
    except BaseException:
        session.rollback()
        _give_back(session, claim, auth, key)
        raise
    return accepted


def _give_back(session: Session, claim: Claimed, auth: Authorization, key: str) -> None:
    """The card is authorized and no order holds it: void the authorization through the outbox
    and drop the claim, so that a retry starts afresh (a new order id, a new authorization). If
    the database cannot take even that, the claim stays, and a retry with the key takes it over
    after IDEMPOTENCY_LOCK_TIMEOUT_S and finds this same authorization at the gateway."""
    try:
        enqueue(session, VoidAuthorization(order_id=claim.order_id, authorization_id=auth.id))
        idempotency.discard(session, key)
        session.commit()
    except Exception:
        session.rollback()
        log.exception("authorization %s is held with no order; the claim stays", auth.id)


def write_order(
    session: Session,
    order_id: uuid.UUID,
    cart: Cart,
    priced: PricedOrder,
    auth: Authorization,
    gateway_name: str,
    rules: CheckoutRules,
) -> OrderView:
    now = utcnow()
    customer, address = cart.customer, cart.shipping_address
    number: int = session.exec(
        insert(table(Order))
        .values(
            id=order_id,
            number=next_order_number(session.get_bind().dialect.name),
            status=OrderStatus.PENDING,
            customer_email=customer.email,
            customer_name=customer.name,
            shipping_name=address.name,
            shipping_line1=address.line1,
            shipping_line2=address.line2,
            shipping_city=address.city,
            shipping_postal_code=address.postal_code,
            shipping_country=address.country,
            currency=priced.currency,
            subtotal=priced.subtotal,
            tax=priced.tax,
            tax_rate_bps=rules.tax_rate_bps,
            total=priced.total,
            access_token_hash=hash_access_token(access_token_for(order_id, rules.secret_key)),
            version=1,
            created_at=now,
            updated_at=now,
        )
        .returning(col(Order.number))
    ).scalar_one()
    session.exec(
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
    session.exec(
        insert(table(Payment)).values(
            order_id=order_id,
            gateway=gateway_name,
            authorization_id=auth.id,
            status=PaymentStatus.AUTHORIZED,
            amount=auth.amount,
            currency=auth.currency,
            token_fingerprint=fingerprint_of(cart.payment_token, rules.secret_key),
            card_brand=auth.card_brand,
            card_last4=auth.card_last4,
            created_at=now,
            updated_at=now,
        )
    )
    order = OrderView(
        id=order_id,
        number=number,
        status=OrderStatus.PENDING,
        currency=priced.currency,
        subtotal=priced.subtotal,
        tax=priced.tax,
        total=priced.total,
        tax_rate_bps=rules.tax_rate_bps,
        customer=customer,
        shipping_address=address,
        lines=priced.lines,
        created_at=now,
        updated_at=now,
    )
    events.record(session, order_id, "order.placed", {"order": order.snapshot()})
    enqueue(session, RunStep(order_id=order_id))
    return order
