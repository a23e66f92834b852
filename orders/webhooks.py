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
from dataclasses import dataclass
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
    "order.refunded",
    "order.failed",
    "order.retry_requested",
    "payment.voided",
    "catalog.imported",
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


def payload_bytes(
    event_type: str, occurred_at: datetime, seq: int | None, data: dict[str, Any]
) -> bytes:
    """The body, built only from the immutable event: the same bytes on every attempt. An
    order's events carry their place in its timeline (`sequence`); the shop's own have none."""
    payload = {
        "type": event_type,
        "timestamp": occurred_at.isoformat(),
        "data": data if seq is None else {"sequence": seq, **data},
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


@dataclass(frozen=True)
class Allowed:
    """What may be reached although the rules would refuse it: hosts, addresses or CIDRs
    (WEBHOOK_ALLOWED_HOSTS), and ports besides 80 and 443 (WEBHOOK_ALLOWED_PORTS)."""

    hosts: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()

    @classmethod
    def of(cls, hosts: str, ports: str) -> "Allowed":
        return cls(tuple(allowlist(hosts)), tuple(int(port) for port in allowlist(ports)))


@dataclass(frozen=True)
class Destination:
    scheme: str
    host: str
    port: int


def check_url(url: str, allowed: Allowed) -> Destination:
    """Only http(s) with a host, no credentials, and port 80 or 443 unless allowed."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RefusedDestination("only http and https URLs with a host are accepted")
    if parts.username or parts.password:
        raise RefusedDestination("credentials in the URL are not accepted")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as error:
        raise RefusedDestination("the port is not a number from 0 to 65535") from error
    if port not in (80, 443, *allowed.ports) and parts.hostname not in allowed.hosts:
        raise RefusedDestination(f"port {port} is not accepted; 80 and 443 are")
    return Destination(parts.scheme, parts.hostname, port)


def check_addresses(host: str, addresses: Iterable[str], allowed: Allowed) -> str:
    """Refuse loopback, private, link-local (cloud metadata), multicast and reserved addresses,
    IPv6 ones included that carry such an IPv4 address inside (mapped, compatible, 6to4, Teredo,
    NAT64), unless the host or the address is allowed (a name, an address or a CIDR). Returns
    the address to connect to: the first, checked, so the connection goes where the check
    looked (no second lookup for a rebinding DNS to answer differently)."""
    found = [ipaddress.ip_address(a.split("%")[0]) for a in addresses]
    if not found:
        raise RefusedDestination(f"{host} does not resolve")
    if host in allowed.hosts:
        return str(found[0])
    networks = []
    for entry in allowed.hosts:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            continue  # a host name, matched above
    for address in found:
        if any(address in network for network in networks):
            continue
        for candidate in (address, *embedded_ipv4(address)):
            if not candidate.is_global or candidate.is_multicast:
                raise RefusedDestination(f"{host} resolves to {address}, which is not public")
    return str(found[0])


NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def embedded_ipv4(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list[Any]:
    """The IPv4 addresses an IPv6 address carries, which is where its packets end up."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    found = [address.ipv4_mapped, address.sixtofour, *(address.teredo or ())]
    if any(address in network for network in NAT64) or address in IPV4_COMPATIBLE:
        found.append(low32)
    return [embedded for embedded in found if embedded is not None]
