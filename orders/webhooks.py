"""Outbound webhooks, the rules: Standard Webhooks signing, the retry schedule, which answers
retry, and which destinations are refused (SSRF). Plain Python, used by both sides."""

import base64
import hashlib
import hmac
import ipaddress
import json
import random
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

EVENT_TYPES = (
    "order.placed",
    "order.reserved",
    "order.paid",
    "order.invoiced",
    "order.completed",
    "order.shipped",
    "order.cancelled",
    "order.failed",
    "order.retry_requested",
    "payment.voided",
)


def new_secret() -> str:
    """`whsec_` + base64 of 32 random bytes, as the Standard Webhooks libraries expect."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signature_headers(
    secrets_: Iterable[str], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """Every valid secret signs (a rotation's old and new one), space-separated."""
    signatures = " ".join(sign(secret, msg_id, timestamp, body) for secret in secrets_)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signatures,
        "content-type": "application/json",
    }


def message_id(delivery_id: Any) -> str:
    return f"msg_{delivery_id}"


def payload_bytes(event_type: str, occurred_at: datetime, seq: int, data: dict[str, Any]) -> bytes:
    """The body, built only from the immutable event: the same bytes on every attempt."""
    payload = {
        "type": event_type,
        "timestamp": occurred_at.isoformat(),
        "data": {"sequence": seq, **data},
    }
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


class Verdict(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    FAIL = "fail"  # the receiver refused for good (4xx)
    GONE = "gone"  # 410: the receiver asks us to stop; the endpoint is disabled


def verdict_for(status: int | None) -> Verdict:
    """None stands for a timeout or a connection error."""
    if status is None or status == 429 or status >= 500:
        return Verdict.RETRY
    if 200 <= status < 300:
        return Verdict.DELIVERED
    if status == 410:
        return Verdict.GONE
    return Verdict.FAIL  # 3xx too: redirects are not followed


def backoff(attempt: int, base_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Exponential from `base_s`, capped at `max_s`, with equal jitter: half fixed, half random,
    so receivers that failed together do not all come back together."""
    ceiling = min(max_s, base_s * 2.0 ** max(0, attempt - 1))
    uniform = rng.uniform if rng else random.uniform
    return ceiling / 2 + uniform(0, ceiling / 2)


def retry_after_s(header: str | None, now: datetime, max_s: float) -> float | None:
    """`Retry-After` as seconds or an HTTP date; None when absent or unreadable."""
    if not header:
        return None
    seconds: float
    try:
        seconds = float(header)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(header) - now).total_seconds()
        except (TypeError, ValueError):
            return None
    return max(0.0, min(seconds, max_s))


def next_attempt(
    attempt: int,
    now: datetime,
    deadline: datetime,
    base_s: float,
    max_s: float,
    retry_after: float | None = None,
) -> datetime | None:
    """When to try again, or None once that would be past the deadline."""
    delay = retry_after if retry_after is not None else backoff(attempt, base_s, max_s)
    when = now + timedelta(seconds=delay)
    return when if when <= deadline else None


class RefusedDestination(ValueError):
    pass


def allowlist(setting: str) -> list[str]:
    return [entry.strip() for entry in setting.split(",") if entry.strip()]


def check_url_shape(url: str) -> str:
    """Only http(s) with a host; returns the host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RefusedDestination("only http and https URLs with a host are accepted")
    if parts.username or parts.password:
        raise RefusedDestination("credentials in the URL are not accepted")
    return parts.hostname


def check_addresses(host: str, addresses: Iterable[str], allowlist: Iterable[str]) -> None:
    """Refuse loopback, private, link-local (cloud metadata), multicast and reserved addresses,
    unless the host or every address is allowlisted (a name, an address or a CIDR)."""
    allowed = list(allowlist)
    if host in allowed:
        return
    networks = []
    for entry in allowed:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            continue  # a host name, matched above
    found = [ipaddress.ip_address(a.split("%")[0]) for a in addresses]
    if not found:
        raise RefusedDestination(f"{host} does not resolve")
    for address in found:
        if any(address in network for network in networks):
            continue
        if not address.is_global or address.is_multicast:
            raise RefusedDestination(f"{host} resolves to {address}, which is not public")
