"""Checkout: price the cart from the catalog, authorize the card, write the order in one
transaction. The outcome is told in the shop's terms (accepted, declined, replayed); the API turns
it into HTTP, and gives checkout the answer to store for replays of the same Idempotency-Key."""

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import insert
from sqlmodel import Session
from sqlmodel.ext.asyncio.session import AsyncSession

from orders import idempotency
from orders.catalog import PriceBook
from orders.db import run, together
from orders.idempotency import Claimed, IdempotencyPolicy, StoredResponse, unfinished_claim
from orders.messages import VoidAuthorization, outbox_row
from orders.models import Outbox, table, utcnow
from orders.new_order import NewOrder
from orders.order_write import write_order
from orders.payments import Authorization, Authorizer, InvalidPaymentToken, PaymentDeclined
from orders.pricing import CatalogPrice, OrderLimits, PricingError, check_cart, price_order
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
    response: StoredResponse  # as stored for replays of the key


@dataclass(frozen=True)
class Declined:
    code: str
    message: str


@dataclass(frozen=True)
class Replayed:
    """The key was used before with this request: what was answered then."""

    response: StoredResponse


Answer = Callable[[OrderView | Declined], StoredResponse]


async def place_order(
    session: AsyncSession,
    gateway: Authorizer,
    catalog: PriceBook,
    rules: CheckoutRules,
    cart: Cart,
    key: str,
    fingerprint: str,
    answer: Answer,
) -> Accepted | Declined | Replayed:
    """Raises PricingError or InvalidPaymentToken for a cart to correct, GatewayUnavailable when
    nothing is known to have been charged, KeyReused or KeyInUse for the Idempotency-Key.

    `session` is an autocommit one on PostgreSQL (orders.db.make_async_engines): every
    write here is one statement, and none pays for BEGIN and COMMIT. `catalog` prices the cart,
    from memory when it can (orders.catalog)."""
    check_cart(cart.lines, rules.limits)
    # Priced and claimed in one call, whose commit gives the connection back to the pool: no
    # connection is held while the gateway answers.
    prices, claim = await run(
        session, _price_and_claim, catalog, cart, key, fingerprint, rules.idempotency
    )
    if isinstance(claim, StoredResponse):
        return Replayed(claim)
    try:
        priced = price_order(cart.lines, cart.currency, prices, rules.tax_rate_bps)
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
    new = NewOrder.of(
        claim.order_id,
        cart.customer,
        cart.shipping_address,
        cart.payment_token,
        priced,
        auth,
        gateway.name,
        rules.tax_rate_bps,
        rules.secret_key,
    )
    return await run(session, _accept, claim, new, key, answer)


def _price_and_claim(
    session: Session,
    catalog: PriceBook,
    cart: Cart,
    key: str,
    fingerprint: str,
    policy: IdempotencyPolicy,
) -> tuple[dict[str, CatalogPrice], Claimed | StoredResponse]:
    prices = catalog.prices(session, [sku for sku, _ in cart.lines])
    return prices, idempotency.claim(session, key, fingerprint, policy)


def _answered(session: Session, key: str, response: StoredResponse) -> None:
    idempotency.record_response(session, key, response)
    session.commit()


def _accept(session: Session, claim: Claimed, new: NewOrder, key: str, answer: Answer) -> Accepted:
    """The order, its lines, payment, first event and outbox message, and the stored answer: one
    transaction (on PostgreSQL one statement, see orders.order_write)."""
    try:
        order, response = write_order(session, claim, new, key, answer)
        session.commit()
    except BaseException:
        session.rollback()
        _give_back(session, claim, new.auth, key)
        raise
    return Accepted(order, response)


def _give_back(session: Session, claim: Claimed, auth: Authorization, key: str) -> None:
    """The card is authorized and no order holds it: void the authorization through the outbox
    and drop the claim, so that a retry starts afresh (a new order id, a new authorization). If
    the database cannot take even that, the claim stays, and a retry with the key takes it over
    after IDEMPOTENCY_LOCK_TIMEOUT_S and finds this same authorization at the gateway."""
    void = VoidAuthorization(order_id=claim.order_id, authorization_id=auth.id)
    try:
        together(
            session, insert(table(Outbox)).values(outbox_row(void, utcnow())), unfinished_claim(key)
        )
        session.commit()
    except Exception:
        session.rollback()
        log.exception("authorization %s is held with no order; the claim stays", auth.id)
