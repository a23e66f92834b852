"""Sending one webhook delivery: claim it under the endpoint's in-flight cap, sign the stored
event's bytes, POST them, record the attempt, and schedule the next one in the database."""

import logging
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import delete, func
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select

from fulfillment.config import WorkerSettings
from orders.models import (
    DeliveryStatus,
    OrderEvent,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    table,
    utcnow,
)
from orders.webhooks import (
    Allowed,
    RefusedDestination,
    Verdict,
    check_addresses,
    check_url,
    message_id,
    next_attempt,
    payload_bytes,
    retry_after_s,
    signature_headers,
    verdict_for,
)

log = logging.getLogger(__name__)

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


def claim(session: Session, settings: WorkerSettings, delivery_id: uuid.UUID) -> Request | None:
    """Take the delivery for one attempt, if it is due and its endpoint has room in flight."""
    now = utcnow()
    delivery = session.exec(
        select(WebhookDelivery).where(WebhookDelivery.id == delivery_id).with_for_update()
    ).first()
    if delivery is None or delivery.status != DeliveryStatus.PENDING:
        return None
    if delivery.in_flight_until is not None and delivery.in_flight_until > now:
        return None  # a duplicate message: another worker is on it
    endpoint = session.exec(
        select(WebhookEndpoint).where(WebhookEndpoint.id == delivery.endpoint_id).with_for_update()
    ).one()  # its row lock makes the in-flight count below exact
    if not endpoint.enabled:
        _finish(
            session,
            delivery,
            DeliveryStatus.FAILED,
            f"endpoint disabled: {endpoint.disabled_reason}",
        )
        session.commit()
        return None
    in_flight = session.exec(
        select(func.count())
        .select_from(WebhookDelivery)
        .where(
            WebhookDelivery.endpoint_id == endpoint.id,
            col(WebhookDelivery.in_flight_until) > now,
        )
    ).one()
    if in_flight >= settings.webhook_max_in_flight_per_endpoint:
        delivery.next_attempt_at = now + timedelta(seconds=1)  # the sweep comes back for it
        session.add(delivery)
        session.commit()
        return None

    lease = settings.webhook_connect_timeout_s + settings.webhook_read_timeout_s + 30
    delivery.in_flight_until = now + timedelta(seconds=lease)
    delivery.attempts += 1
    delivery.retry_until = delivery.retry_until or now + timedelta(
        hours=settings.webhook_retry_horizon_hours
    )
    session.add(delivery)
    event = session.get(OrderEvent, delivery.event_id)
    assert event is not None
    secrets = [endpoint.secret]
    if endpoint.previous_secret and (endpoint.previous_secret_expires_at or now) > now:
        secrets.append(endpoint.previous_secret)
    session.commit()

    body = payload_bytes(event.type, event.occurred_at, event.seq, event.data)
    headers = signature_headers(secrets, message_id(delivery.id), int(now.timestamp()), body)
    return Request(delivery.id, endpoint.url, body, headers | {"user-agent": USER_AGENT})


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


def record(
    session: Session, settings: WorkerSettings, request: Request, outcome: Outcome
) -> Verdict:
    """Log the attempt, and settle the delivery: delivered, failed, or due again later."""
    now = utcnow()
    delivery = session.exec(
        select(WebhookDelivery).where(WebhookDelivery.id == request.delivery_id).with_for_update()
    ).one()
    endpoint = session.exec(
        select(WebhookEndpoint).where(WebhookEndpoint.id == delivery.endpoint_id).with_for_update()
    ).one()
    session.add(
        WebhookAttempt(
            delivery_id=delivery.id,
            attempted_at=now,
            request_headers={k: v for k, v in request.headers.items() if k != "webhook-signature"},
            response_status=outcome.status,
            response_body_excerpt=outcome.body_excerpt,
            duration_ms=outcome.duration_ms,
            error=outcome.error,
        )
    )
    verdict = Verdict.FAIL if outcome.refused else verdict_for(outcome.status)
    error = outcome.error or (f"HTTP {outcome.status}" if verdict != Verdict.DELIVERED else None)
    delivery.in_flight_until = None
    if verdict == Verdict.DELIVERED:
        _finish(session, delivery, DeliveryStatus.DELIVERED, None)
        delivery.delivered_at = now
        endpoint.consecutive_failures = 0
    elif verdict == Verdict.RETRY and (when := _next(settings, delivery, outcome, now)):
        delivery.next_attempt_at, delivery.last_error = when, error
    else:
        _finish(session, delivery, DeliveryStatus.FAILED, error)
        endpoint.consecutive_failures += 1
        if verdict == Verdict.GONE:
            _disable(endpoint, "the receiver answered 410 Gone")
        elif endpoint.consecutive_failures >= settings.webhook_disable_after_failures:
            _disable(endpoint, f"{endpoint.consecutive_failures} consecutive failed deliveries")
    session.add_all([delivery, endpoint])
    session.commit()
    return verdict


def _next(
    settings: WorkerSettings, delivery: WebhookDelivery, outcome: Outcome, now: datetime
) -> datetime | None:
    assert delivery.retry_until is not None
    return next_attempt(
        delivery.attempts,
        now,
        delivery.retry_until,
        settings.webhook_backoff_base_s,
        settings.webhook_backoff_max_s,
        retry_after_s(outcome.retry_after, now, settings.webhook_backoff_max_s),
    )


def _finish(
    session: Session, delivery: WebhookDelivery, status: DeliveryStatus, error: str | None
) -> None:
    delivery.status, delivery.last_error = status, error
    delivery.next_attempt_at = None
    delivery.in_flight_until = None
    session.add(delivery)


def _disable(endpoint: WebhookEndpoint, reason: str) -> None:
    endpoint.enabled, endpoint.disabled_reason = False, reason
    endpoint.updated_at = utcnow()
    log.warning("webhook endpoint %s disabled: %s", endpoint.id, reason)


def deliver(
    sessions: sessionmaker[Session],
    http: httpx.Client,
    settings: WorkerSettings,
    delivery_id: uuid.UUID,
) -> None:
    """One attempt. A database error before the request goes out is the task's to retry; after
    it, the outcome is recorded with retries here, so the attempt is neither lost nor repeated
    (a delivery left in flight would be sent again when its lease runs out)."""
    with sessions() as session:
        request = claim(session, settings, delivery_id)
    if request is None:
        return
    outcome = send(http, settings, request)
    verdict = record_with_retries(sessions, settings, request, outcome)
    log.info("webhook %s: %s (%s)", delivery_id, verdict, outcome.status or outcome.error)


def record_with_retries(
    sessions: sessionmaker[Session], settings: WorkerSettings, request: Request, outcome: Outcome
) -> Verdict:
    deadline, wait = time.monotonic() + settings.webhook_record_retry_s, 0.25
    while True:
        try:
            with sessions() as session:
                return record(session, settings, request, outcome)
        except OperationalError as error:
            if time.monotonic() + wait > deadline:
                raise
            log.warning(
                "webhook %s sent, not recorded yet (again in %.2f s): %r",
                request.delivery_id,
                wait,
                error,
            )
            time.sleep(wait)
            wait = min(wait * 2, 5.0)


def purge_attempts(session: Session, retention: timedelta) -> int:
    attempts = table(WebhookAttempt)
    result = session.exec(delete(attempts).where(attempts.c.attempted_at < utcnow() - retention))
    session.commit()
    return int(result.rowcount)
