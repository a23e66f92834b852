"""The card authorization the API awaits at checkout, over HTTP to a Stripe-like gateway
(`fakes.gateway` speaks it on loopback), or the in-process sandbox.

On aiohttp's client, not httpx or the httpcore pool under it: tens of checkouts await the gateway
at once, and httpcore's pool walks every connection it holds, polling each idle socket, as each
request is queued and again as it is released (encode/httpcore#1035, still open). Its client CPU
per call grew with the calls in flight, from 0.47 ms at one to 1.39 ms at twenty, and a busy API,
with more checkouts in flight, paid more for each: it fell over instead of slowing down. aiohttp's
stays at 0.13 to 0.20 ms (README, issue 18). Only the API imports this module: the workers settle
over httpx, one call at a time, and do not load aiohttp (an import contract says so)."""

import aiohttp

from orders.config import Settings
from orders.payments import (
    Authorization,
    Authorizer,
    GatewayUnavailable,
    InvalidPaymentToken,
    PaymentDeclined,
    SandboxGateway,
    json_or_unavailable,
)


class HttpAuthorizer:
    """One POST per checkout to one URL, on keep-alive connections kept for the process. Made in
    the API's lifespan: aiohttp's session belongs to the running event loop."""

    name = "http"

    def __init__(self, settings: Settings) -> None:
        connect, read = settings.payment_connect_timeout_s, settings.payment_read_timeout_s
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=100),
            # The total is the budget: a gateway that trickles bytes must not hold a checkout.
            timeout=aiohttp.ClientTimeout(total=connect + read, connect=connect, sock_read=read),
            cookie_jar=aiohttp.DummyCookieJar(),  # the gateway's API sets none worth keeping
            headers={
                "Authorization": f"Bearer {settings.payment_gateway_api_key}",
                "Accept": "application/json",
            },
        )
        self._url = settings.payment_gateway_url.rstrip("/") + "/v1/authorizations"

    async def authorize(
        self, *, token: str, amount: int, currency: str, idempotency_key: str
    ) -> Authorization:
        body = {"token": token, "amount": amount, "currency": currency}
        try:
            async with self._session.post(
                self._url, json=body, headers={"Idempotency-Key": idempotency_key}
            ) as response:
                status, content = response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise GatewayUnavailable(f"payment gateway unreachable: {exc!r}") from exc
        answer = json_or_unavailable(status, content)
        error = answer.get("error") or {}
        if status == 402:
            raise PaymentDeclined(
                error.get("code", "card_declined"), error.get("message", "Declined.")
            )
        if status in (400, 404) and error.get("code") == "invalid_token":
            raise InvalidPaymentToken(error.get("message", "No such token."))
        if status not in (200, 201):
            # 401, 403, 409...: our configuration or the gateway is wrong, not the customer.
            raise GatewayUnavailable(f"payment gateway answered {status}")
        card = answer.get("card") or {}
        return Authorization(
            answer["id"], answer["amount"], answer["currency"], card.get("brand"), card.get("last4")
        )

    async def aclose(self) -> None:
        await self._session.close()


def make_authorizer(settings: Settings) -> Authorizer:
    return HttpAuthorizer(settings) if settings.payment_gateway == "http" else SandboxGateway()
