"""Capture and void at the card gateway, from the workers: synchronous, idempotent, bounded."""

from typing import Protocol

import httpx

from fulfillment.config import Settings


class GatewayUnavailable(Exception):
    """Timeout, connection error, 409 (same key still running) or 5xx: retry later."""


class CaptureDeclined(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class CardGateway(Protocol):
    def capture(self, authorization_id: str, idempotency_key: str) -> None: ...
    def void(self, authorization_id: str, idempotency_key: str) -> None: ...


# The sandbox encodes the token's behaviour in the authorization id it hands out.
SANDBOX_CAPTURE_DECLINED = "auth_capturefail_"


class SandboxGateway:
    def capture(self, authorization_id: str, idempotency_key: str) -> None:
        if authorization_id.startswith(SANDBOX_CAPTURE_DECLINED):
            raise CaptureDeclined("card_declined")

    def void(self, authorization_id: str, idempotency_key: str) -> None:
        return None


class HttpGateway:
    def __init__(self, settings: Settings, client: httpx.Client | None = None) -> None:
        self._client = client or httpx.Client(
            base_url=settings.payment_gateway_url,
            timeout=httpx.Timeout(
                settings.payment_read_timeout_s, connect=settings.payment_connect_timeout_s
            ),
            headers={"Authorization": f"Bearer {settings.payment_gateway_api_key}"},
            follow_redirects=False,
        )

    def _post(self, path: str, idempotency_key: str) -> httpx.Response:
        try:
            response = self._client.post(path, headers={"Idempotency-Key": idempotency_key})
        except httpx.TransportError as exc:
            raise GatewayUnavailable(f"gateway unreachable: {exc!r}") from exc
        if response.status_code >= 500 or response.status_code == 429 or _still_running(response):
            raise GatewayUnavailable(f"gateway answered {response.status_code}")
        return response

    def capture(self, authorization_id: str, idempotency_key: str) -> None:
        response = self._post(f"/v1/authorizations/{authorization_id}/capture", idempotency_key)
        if response.status_code == 402:
            raise CaptureDeclined(response.json().get("error", {}).get("code", "card_declined"))
        response.raise_for_status()

    def void(self, authorization_id: str, idempotency_key: str) -> None:
        response = self._post(f"/v1/authorizations/{authorization_id}/void", idempotency_key)
        response.raise_for_status()


def _still_running(response: httpx.Response) -> bool:
    """409 for "a request with this idempotency key is in flight", as opposed to a wrong state."""
    if response.status_code != 409:
        return False
    try:
        return bool(response.json().get("error", {}).get("type") == "idempotency_error")
    except ValueError:
        return False


def make_gateway(settings: Settings) -> CardGateway:
    return HttpGateway(settings) if settings.payment_gateway == "http" else SandboxGateway()
