"""One webhook request: to the address that was checked, signed bytes in, the outcome out. No
database here (deliveries claims and records around it)."""

import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from fulfillment.config import WorkerSettings
from orders.webhooks import (
    Allowed,
    RefusedDestination,
    Verdict,
    check_addresses,
    check_url,
    verdict_for,
)

USER_AGENT = "orders-webhooks/1.0"


@dataclass(frozen=True)
class Request:
    delivery_id: uuid.UUID
    url: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Outcome:
    status: int | None
    body_excerpt: str | None
    retry_after: str | None
    error: str | None
    duration_ms: int
    refused: bool = False

    @property
    def verdict(self) -> Verdict:
        return Verdict.FAIL if self.refused else verdict_for(self.status)


Resolver = Callable[[str], list[str]]


def system_resolver(host: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise RefusedDestination(f"{host} does not resolve") from exc
    return [str(info[4][0]) for info in infos]


def pinned(url: str, allowed: Allowed, resolve: Resolver) -> tuple[httpx.URL, str]:
    """Checked again at delivery time (the name may resolve elsewhere than when it was
    registered), and resolved once: the request goes to the address that was checked, with the
    name in its Host header (and TLS's SNI), so a DNS answer that changes in between reaches
    nothing. Returns the URL to connect to and the host name."""
    host = check_url(url, allowed).host
    address = check_addresses(host, resolve(host), allowed)
    target = f"[{address}]" if ":" in address else address
    return httpx.URL(url).copy_with(host=target), host


def send(
    http: httpx.Client,
    settings: WorkerSettings,
    request: Request,
    resolve: Resolver = system_resolver,
) -> Outcome:
    started = time.monotonic()

    def elapsed() -> int:
        return round((time.monotonic() - started) * 1000)

    try:
        url, host = pinned(request.url, settings.allowed_destinations(), resolve)
    except RefusedDestination as refused:
        return Outcome(None, None, None, f"refused: {refused}", elapsed(), refused=True)
    sni = {"sni_hostname": host} if url.scheme == "https" else {}
    try:
        response = http.post(
            url,
            content=request.body,
            headers=request.headers | {"host": httpx.URL(request.url).netloc.decode()},
            timeout=httpx.Timeout(
                settings.webhook_read_timeout_s, connect=settings.webhook_connect_timeout_s
            ),
            follow_redirects=False,
            extensions=sni,
        )
    except httpx.HTTPError as exc:
        return Outcome(None, None, None, f"{type(exc).__name__}: {exc}", elapsed())
    return Outcome(
        response.status_code,
        response.text[:500],
        response.headers.get("retry-after"),
        None,
        elapsed(),
    )
