"""Webhook rules: signatures an independent library accepts, the retry schedule, what is refused."""

import random
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from orders.webhooks import (
    Allowed,
    RefusedDestination,
    Verdict,
    backoff,
    check_addresses,
    check_url,
    new_secret,
    next_attempt,
    payload_bytes,
    retry_after_s,
    signature_headers,
    verdict_for,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def sent_now() -> int:
    """The library refuses timestamps more than 5 minutes from its own clock."""
    return int(datetime.now(UTC).timestamp())


def test_signatures_verify_with_the_standard_webhooks_library():
    secret = new_secret()
    body = payload_bytes("order.paid", NOW, 3, {"order": {"id": "o1", "total": 4920}})
    headers = signature_headers([secret], "msg_1", sent_now(), body)
    payload = Webhook(secret).verify(body, headers)
    assert payload["type"] == "order.paid"
    assert payload["data"]["sequence"] == 3


def test_during_a_rotation_both_secrets_verify():
    old, new = new_secret(), new_secret()
    body = b'{"type":"order.placed"}'
    headers = signature_headers([new, old], "msg_2", sent_now(), body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert Webhook(secret).verify(body, headers)["type"] == "order.placed"


def test_a_changed_byte_fails_verification():
    secret = new_secret()
    body = b'{"type":"order.placed"}'
    headers = signature_headers([secret], "msg_3", sent_now(), body)
    with pytest.raises(WebhookVerificationError, match="signature"):
        Webhook(secret).verify(body.replace(b"placed", b"paid"), headers)


def test_the_body_is_the_same_bytes_every_time():
    data = {"order": {"b": 1, "a": 2}}
    assert payload_bytes("order.paid", NOW, 1, data) == payload_bytes("order.paid", NOW, 1, data)


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, Verdict.DELIVERED),
        (204, Verdict.DELIVERED),
        (None, Verdict.RETRY),
        (429, Verdict.RETRY),
        (500, Verdict.RETRY),
        (503, Verdict.RETRY),
        (410, Verdict.GONE),
        (400, Verdict.FAIL),
        (404, Verdict.FAIL),
        (301, Verdict.FAIL),
    ],
)
def test_which_answers_retry(status, verdict):
    assert verdict_for(status) is verdict


def test_backoff_grows_from_seconds_to_hours_with_jitter():
    rng = random.Random(7)
    delays = [backoff(n, 5, 6 * 3600, rng) for n in range(1, 20)]
    assert 2.5 <= delays[0] <= 5
    assert delays[-1] >= 3 * 3600  # capped at 6 h, never below half of it
    assert all(d <= 6 * 3600 for d in delays)
    assert len({round(d, 3) for d in delays[-5:]}) == 5  # jitter: no two alike


def test_retries_span_at_least_three_days_then_stop():
    rng = random.Random(1)
    deadline = NOW + timedelta(hours=72)
    now, attempt = NOW, 1
    for _ in range(1_000):  # far more attempts than 3 days of backoff allow
        delay = backoff(attempt, 5, 6 * 3600, rng)
        when = next_attempt(attempt, now, deadline, 5, 6 * 3600, retry_after=delay)
        if when is None:
            break
        now, attempt = when, attempt + 1
    else:
        raise AssertionError("retries never stopped")
    assert now > NOW + timedelta(hours=60)
    assert attempt > 10


def test_retry_after_is_honoured_in_seconds_or_as_a_date():
    assert retry_after_s("120", NOW, 3600) == 120
    assert retry_after_s("Wed, 25 Nov 2026 12:01:00 GMT", NOW, 3600) == 60
    assert retry_after_s("99999", NOW, 3600) == 3600
    assert retry_after_s("soon", NOW, 3600) is None
    assert retry_after_s(None, NOW, 3600) is None
    assert next_attempt(1, NOW, NOW + timedelta(days=3), 5, 60, retry_after=30) == NOW + timedelta(
        seconds=30
    )


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "file:///etc/passwd", "https://", "http://user:pw@example.com/"]
)
def test_only_plain_http_urls(url):
    with pytest.raises(RefusedDestination):
        check_url(url, Allowed())


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.9",
        "192.168.1.1",
        "169.254.169.254",
        "::1",
        "fd00::1",
        "0.0.0.0",  # noqa: S104 - an address to refuse, not to bind
    ],
)
def test_internal_addresses_are_refused(address):
    with pytest.raises(RefusedDestination):
        check_addresses("hooks.example", [address], Allowed())


def test_one_internal_address_among_public_ones_is_enough_to_refuse():
    with pytest.raises(RefusedDestination):
        check_addresses("hooks.example", ["93.184.215.14", "10.0.0.1"], Allowed())


def test_public_and_allowlisted_addresses_pass():
    assert check_addresses("hooks.example", ["93.184.215.14"], Allowed()) == "93.184.215.14"
    assert check_addresses("127.0.0.1", ["127.0.0.1"], Allowed(("127.0.0.1",))) == "127.0.0.1"
    internal = Allowed(("10.0.0.0/8",))
    assert check_addresses("hooks.internal", ["10.0.0.7"], internal) == "10.0.0.7"
    # Public IPv6, and IPv6 forms that carry a public IPv4 (NAT64 and 6to4 of 8.8.8.8).
    for address in ("2606:4700::6810:84e5", "64:ff9b::808:808", "2002:808:808::1"):
        assert check_addresses("hooks.example", [address], Allowed()) == address


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "64:ff9b:1::a9fe:a9fe",  # local-use NAT64 of 169.254.169.254
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:c0a8:101::1",  # 6to4 of 192.168.1.1
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::127.0.0.1",  # IPv4-compatible
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    ],
)
def test_ipv6_that_carries_a_private_or_loopback_ipv4_is_refused(address):
    with pytest.raises(RefusedDestination):
        check_addresses("hooks.example", [address], Allowed())


@pytest.mark.parametrize(
    ("url", "allowed", "port"),
    [
        ("http://hooks.example/", Allowed(), 80),
        ("https://hooks.example/x", Allowed(), 443),
        ("https://hooks.example:443/x", Allowed(), 443),
        ("https://hooks.example:8443/x", Allowed(ports=(8443,)), 8443),
        ("http://127.0.0.1:9000/x", Allowed(hosts=("127.0.0.1",)), 9000),
    ],
)
def test_ports_are_80_and_443_unless_allowed(url, allowed, port):
    assert check_url(url, allowed).port == port


@pytest.mark.parametrize(
    "url", ["http://8.8.8.8:22/", "https://hooks.example:8443/x", "http://hooks.example:6379/"]
)
def test_other_ports_are_refused(url):
    with pytest.raises(RefusedDestination, match="port"):
        check_url(url, Allowed())
