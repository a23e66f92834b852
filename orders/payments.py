"""The card gateway, both halves: authorization at checkout (async, in the API), capture, void and
refund after it (sync, in the workers). A sandbox that answers in-process, and the settler for a
Stripe-like REST gateway (`fakes.gateway` speaks it on loopback; the API's HTTP authorizer is in
orders.card_authorizer). Every call carries an idempotency key derived from the order, so a
retried call finds the first one's effect instead of repeating it."""

import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

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


class CaptureDeclined(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class InvalidPaymentToken(Exception):
    """The gateway does not know this token."""


class GatewayUnavailable(Exception):
    """Timeout, connection error, 429 or 5xx, or the same key still running: nothing is known to
    have happened; retry later."""


class Authorizer(Protocol):
    name: str

    async def authorize(
        self, *, token: str, amount: int, currency: str, idempotency_key: str
    ) -> Authorization: ...

    async def aclose(self) -> None: ...


class Settler(Protocol):
    def capture(self, authorization_id: str, idempotency_key: str) -> None: ...
    def void(self, authorization_id: str, idempotency_key: str) -> None: ...
    def refund(self, authorization_id: str, amount: int, idempotency_key: str) -> str:
        """Give back `amount` of a captured payment; returns the gateway's refund id."""
        ...


def token_fingerprint(token: str, secret_key: str) -> str:
    """Lets support match two orders paid with one token without ever storing the token."""
    return hmac.new(secret_key.encode(), token.encode(), hashlib.sha256).hexdigest()


# Stripe's test tokens (https://docs.stripe.com/testing#cards), for the sandbox and the fake.
TEST_CARDS: dict[str, tuple[str, str]] = {  # token -> (brand, last 4 digits)
    "tok_visa": ("visa", "4242"),
    "tok_visa_debit": ("visa", "5556"),
    "tok_mastercard": ("mastercard", "4444"),
    "tok_amex": ("amex", "8431"),
    "tok_chargeCustomerFail": ("visa", "0341"),  # authorizes, then the capture is declined
}
TEST_DECLINES: dict[str, tuple[str, str]] = {  # token -> (decline code, message)
    "tok_chargeDeclined": ("card_declined", "Your card was declined."),
    "tok_insufficientFunds": ("insufficient_funds", "Your card has insufficient funds."),
    "tok_expiredCard": ("expired_card", "Your card has expired."),
}
CAPTURE_FAILS_TOKEN = "tok_chargeCustomerFail"  # noqa: S105 - a public test token


class SandboxGateway:
    """In-process, for development: answers at once, remembers idempotency keys. Authorization
    happens in the API and capture in a worker, so the capture's outcome travels in the id."""

    name = "sandbox"
    CAPTURE_DECLINED = "auth_capturefail_"

    def __init__(self) -> None:
        self._seen: dict[str, Authorization] = {}
        self.asked: list[tuple[str, str]] = []  # (action, authorization id), as a ledger would

    async def authorize(
        self, *, token: str, amount: int, currency: str, idempotency_key: str
    ) -> Authorization:
        if idempotency_key in self._seen:
            return self._seen[idempotency_key]
        if token in TEST_DECLINES:
            raise PaymentDeclined(*TEST_DECLINES[token])
        if token not in TEST_CARDS:
            raise InvalidPaymentToken(f"No such token: {token}")
        brand, last4 = TEST_CARDS[token]
        prefix = self.CAPTURE_DECLINED if token == CAPTURE_FAILS_TOKEN else "auth_"
        auth = Authorization(f"{prefix}{uuid.uuid4().hex}", amount, currency, brand, last4)
        self._seen[idempotency_key] = auth
        return auth

    def capture(self, authorization_id: str, idempotency_key: str) -> None:
        self.asked.append(("capture", authorization_id))
        if authorization_id.startswith(self.CAPTURE_DECLINED):
            raise CaptureDeclined("card_declined")

    def void(self, authorization_id: str, idempotency_key: str) -> None:
        self.asked.append(("void", authorization_id))

    def refund(self, authorization_id: str, amount: int, idempotency_key: str) -> str:
        self.asked.append(("refund", authorization_id))
        return "re_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]

    async def aclose(self) -> None:
        return None


def _client_options(settings: Settings) -> dict[str, Any]:
    return {
        "base_url": settings.payment_gateway_url,
        "headers": {"Authorization": f"Bearer {settings.payment_gateway_api_key}"},
        "follow_redirects": False,
        "timeout": httpx.Timeout(
            settings.payment_read_timeout_s, connect=settings.payment_connect_timeout_s
        ),
    }


class HttpSettler:
    """Capture, void and refund over HTTP, from the workers (Celery tasks are synchronous)."""

    def __init__(self, settings: Settings, client: httpx.Client | None = None) -> None:
        self._client = client or httpx.Client(**_client_options(settings))

    def capture(self, authorization_id: str, idempotency_key: str) -> None:
        response = self._post(f"/v1/authorizations/{authorization_id}/capture", idempotency_key)
        if response.status_code == 402:
            error = json_or_unavailable(response.status_code, response.content).get("error") or {}
            raise CaptureDeclined(error.get("code", "card_declined"))
        response.raise_for_status()

    def void(self, authorization_id: str, idempotency_key: str) -> None:
        self._post(
            f"/v1/authorizations/{authorization_id}/void", idempotency_key
        ).raise_for_status()

    def refund(self, authorization_id: str, amount: int, idempotency_key: str) -> str:
        response = self._post(
            f"/v1/authorizations/{authorization_id}/refunds", idempotency_key, {"amount": amount}
        )
        response.raise_for_status()
        return str(json_or_unavailable(response.status_code, response.content)["id"])

    def _post(
        self, path: str, idempotency_key: str, body: dict[str, Any] | None = None
    ) -> httpx.Response:
        try:
            response = self._client.post(
                path, headers={"Idempotency-Key": idempotency_key}, json=body
            )
        except httpx.TransportError as exc:
            raise GatewayUnavailable(f"payment gateway unreachable: {exc!r}") from exc
        if response.status_code >= 500 or response.status_code == 429 or _still_running(response):
            raise GatewayUnavailable(f"payment gateway answered {response.status_code}")
        return response


def json_or_unavailable(status: int, content: bytes) -> dict[str, Any]:
    """The body of an answer worth reading; 5xx and bodies that are not JSON are outages."""
    if status >= 500:
        raise GatewayUnavailable(f"payment gateway answered {status}")
    try:
        body: dict[str, Any] = json.loads(content)
    except ValueError as exc:
        raise GatewayUnavailable("payment gateway answered something that is not JSON") from exc
    return body


def _still_running(response: httpx.Response) -> bool:
    """409 for "a request with this idempotency key is in flight", as opposed to a wrong state."""
    if response.status_code != 409:
        return False
    try:
        return bool(response.json().get("error", {}).get("type") == "idempotency_error")
    except ValueError:
        return False


def make_settler(settings: Settings) -> Settler:
    return HttpSettler(settings) if settings.payment_gateway == "http" else SandboxGateway()
