"""Payment authorization at checkout: one interface, a sandbox and an HTTP gateway client."""

import asyncio
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from typing import Protocol

import httpx

from orders.config import Settings


@dataclass(frozen=True)
class Authorization:
    id: str
    amount: int
    currency: str
    card_brand: str | None
    card_last4: str | None


class PaymentDeclined(Exception):
    """The issuer said no; retrying the same card will not help."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class InvalidPaymentToken(Exception):
    """The gateway does not know this token."""


class GatewayUnavailable(Exception):
    """Timeout, connection error or 5xx: nothing is known to have happened; retry later."""


class PaymentGateway(Protocol):
    name: str

    async def authorize(
        self, *, token: str, amount: int, currency: str, idempotency_key: str
    ) -> Authorization: ...

    async def aclose(self) -> None: ...


def token_fingerprint(token: str, secret_key: str) -> str:
    """Lets support match two orders paid with one token without ever storing the token."""
    return hmac.new(secret_key.encode(), token.encode(), hashlib.sha256).hexdigest()


# Stripe-style test tokens: https://docs.stripe.com/testing#cards
SANDBOX_CARDS: dict[str, tuple[str, str]] = {
    "tok_visa": ("visa", "4242"),
    "tok_visa_debit": ("visa", "5556"),
    "tok_mastercard": ("mastercard", "4444"),
    "tok_amex": ("amex", "8431"),
    "tok_chargeCustomerFail": ("visa", "0341"),  # authorizes, then the capture is declined
}
SANDBOX_DECLINES: dict[str, tuple[str, str]] = {
    "tok_chargeDeclined": ("card_declined", "Your card was declined."),
    "tok_insufficientFunds": ("insufficient_funds", "Your card has insufficient funds."),
    "tok_expiredCard": ("expired_card", "Your card has expired."),
}


CAPTURE_FAILS_TOKEN = "tok_chargeCustomerFail"  # noqa: S105 - a public test token


class SandboxGateway:
    """In-process gateway for development: answers at once, remembers idempotency keys."""

    name = "sandbox"

    def __init__(self) -> None:
        self._seen: dict[str, Authorization] = {}

    async def authorize(
        self, *, token: str, amount: int, currency: str, idempotency_key: str
    ) -> Authorization:
        if idempotency_key in self._seen:
            return self._seen[idempotency_key]
        if token in SANDBOX_DECLINES:
            raise PaymentDeclined(*SANDBOX_DECLINES[token])
        if token not in SANDBOX_CARDS:
            raise InvalidPaymentToken(f"No such token: {token}")
        brand, last4 = SANDBOX_CARDS[token]
        # The worker-side sandbox reads the capture outcome back from the id.
        prefix = "auth_capturefail_" if token == CAPTURE_FAILS_TOKEN else "auth_"
        auth = Authorization(f"{prefix}{uuid.uuid4().hex}", amount, currency, brand, last4)
        self._seen[idempotency_key] = auth
        return auth

    async def aclose(self) -> None:
        return None


class HttpGateway:
    """Client for a Stripe-like REST gateway (`fakes.gateway` speaks it on loopback)."""

    name = "http"

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None):
        timeout = httpx.Timeout(
            connect=settings.payment_connect_timeout_s,
            read=settings.payment_read_timeout_s,
            write=settings.payment_read_timeout_s,
            pool=settings.payment_connect_timeout_s,
        )
        self._client = httpx.AsyncClient(
            base_url=settings.payment_gateway_url,
            timeout=timeout,
            headers={"Authorization": f"Bearer {settings.payment_gateway_api_key}"},
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            follow_redirects=False,
            transport=transport,
        )
        # The total budget: a gateway that trickles bytes must not hold a checkout for long.
        self._deadline_s = settings.payment_connect_timeout_s + settings.payment_read_timeout_s

    async def authorize(
        self, *, token: str, amount: int, currency: str, idempotency_key: str
    ) -> Authorization:
        try:
            async with asyncio.timeout(self._deadline_s):
                response = await self._client.post(
                    "/v1/authorizations",
                    json={"token": token, "amount": amount, "currency": currency},
                    headers={"Idempotency-Key": idempotency_key},
                )
        except (httpx.TransportError, TimeoutError) as exc:
            raise GatewayUnavailable(f"payment gateway unreachable: {exc!r}") from exc
        if response.status_code >= 500:
            raise GatewayUnavailable(f"payment gateway answered {response.status_code}")
        try:
            body = response.json()
        except ValueError as exc:
            raise GatewayUnavailable("payment gateway answered something that is not JSON") from exc
        if response.status_code == 402:
            error = body.get("error", {})
            raise PaymentDeclined(
                error.get("code", "card_declined"), error.get("message", "Declined.")
            )
        if (
            response.status_code in (400, 404)
            and body.get("error", {}).get("code") == "invalid_token"
        ):
            raise InvalidPaymentToken(body["error"].get("message", "No such token."))
        if response.status_code != 201 and response.status_code != 200:
            # 401, 403, 409...: our configuration or the gateway is wrong, not the customer.
            raise GatewayUnavailable(f"payment gateway answered {response.status_code}")
        card = body.get("card") or {}
        return Authorization(
            id=body["id"],
            amount=body["amount"],
            currency=body["currency"],
            card_brand=card.get("brand"),
            card_last4=card.get("last4"),
        )

    async def aclose(self) -> None:
        await self._client.aclose()


def make_gateway(settings: Settings) -> PaymentGateway:
    return HttpGateway(settings) if settings.payment_gateway == "http" else SandboxGateway()
