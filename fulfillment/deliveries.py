"""Sending webhook deliveries in batches: a task gets several deliveries to one endpoint (the relay
groups what is due by endpoint), claims them at once under the endpoint's in-flight cap, signs the
stored events' bytes, POSTs them one after another on one connection, and records every attempt
and the next one in one transaction. A task and two transactions per batch, where there were a
task and two transactions per delivery.

The cap counts claims, that is requests open at once to the endpoint: each claim sends one at a
time. A receiver that fails (a timeout, 5xx, 429) or answers 410 stops its batch, so that one task
does not wait out a dead endpoint's timeouts one after another: what was not sent yet is due
again at once, no attempt counted (the failed delivery alone waits for its retry, so none blocks
the others behind it)."""

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import delete, distinct, func, or_
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select

from fulfillment.config import WorkerSettings
from fulfillment.webhook_requests import USER_AGENT, Outcome, Request, send
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
    Verdict,
    message_id,
    next_attempt,
    payload_bytes,
    retry_after_s,
    signature_headers,
)

log = logging.getLogger(__name__)

# What stops a batch: the receiver is failing, or asked us to stop.
STOPS = (Verdict.RETRY, Verdict.GONE)


@dataclass(frozen=True)
class Claim:
    endpoint_id: uuid.UUID
    requests: list[Request]  # in the order of their events


def claim(
    session: Session, settings: WorkerSettings, delivery_ids: Sequence[uuid.UUID]
) -> Claim | None:
    """Take those of the deliveries that are still pending and not in flight for one attempt
    each, if their endpoint has room for one more claim. The relay puts one endpoint's deliveries
    in a message; any other endpoint's here are left to the sweep."""
    now = utcnow()
    deliveries = session.exec(
        select(WebhookDelivery)
        .where(
            col(WebhookDelivery.id).in_(delivery_ids),
            WebhookDelivery.status == DeliveryStatus.PENDING,
            or_(
                col(WebhookDelivery.in_flight_until).is_(None),
                col(WebhookDelivery.in_flight_until) <= now,
            ),
        )
        .order_by(col(WebhookDelivery.event_id))
        # Waits for the relay's commit (it may still hold the rows it just sent), or another
        # claim's, which leaves them in flight.
        .with_for_update()
    ).all()
    if not deliveries:
        return None
    endpoint_id = deliveries[0].endpoint_id
    deliveries = [d for d in deliveries if d.endpoint_id == endpoint_id]
    endpoint = session.exec(
        select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id).with_for_update()
    ).one()  # its row lock makes the count of claims below exact
    if not endpoint.enabled:
        for delivery in deliveries:
            _finish(
                delivery, DeliveryStatus.FAILED, f"endpoint disabled: {endpoint.disabled_reason}"
            )
        session.add_all(deliveries)
        session.commit()
        return None
    claims = session.exec(
        select(func.count(distinct(col(WebhookDelivery.claim_id)))).where(
            WebhookDelivery.endpoint_id == endpoint_id,
            col(WebhookDelivery.in_flight_until) > now,
        )
    ).one()
    if claims >= settings.webhook_max_in_flight_per_endpoint:
        for delivery in deliveries:
            delivery.next_attempt_at = now + timedelta(seconds=1)  # the sweep comes back for it
        session.add_all(deliveries)
        session.commit()
        return None

    claim_id, lease = uuid.uuid4(), now + timedelta(seconds=lease_s(settings, len(deliveries)))
    horizon = now + timedelta(hours=settings.webhook_retry_horizon_hours)
    for delivery in deliveries:
        delivery.in_flight_until, delivery.claim_id = lease, claim_id
        delivery.attempts += 1
        delivery.retry_until = delivery.retry_until or horizon
    session.add_all(deliveries)
    event_ids = [d.event_id for d in deliveries]
    events = {
        e.id: e for e in session.exec(select(OrderEvent).where(col(OrderEvent.id).in_(event_ids)))
    }
    secrets = [endpoint.secret]
    if endpoint.previous_secret and (endpoint.previous_secret_expires_at or now) > now:
        secrets.append(endpoint.previous_secret)
    session.commit()

    requests = []
    for delivery in deliveries:
        event = events[delivery.event_id]
        body = payload_bytes(event.type, event.occurred_at, event.seq, event.data)
        headers = signature_headers(secrets, message_id(delivery.id), int(now.timestamp()), body)
        requests.append(
            Request(delivery.id, endpoint.url, body, headers | {"user-agent": USER_AGENT})
        )
    return Claim(endpoint_id, requests)


def lease_s(settings: WorkerSettings, count: int) -> float:
    """How long a claim of `count` deliveries holds them: their requests at the timeouts, no
    longer than the batch's budget allows, and 30 s to record them. A crashed claim's deliveries
    are free again after it."""
    per_request = per_request_s(settings)
    return min(count * per_request, settings.webhook_batch_budget_s + per_request) + 30


def per_request_s(settings: WorkerSettings) -> float:
    """The longest one request may take: connecting, then waiting for the answer."""
    return settings.webhook_connect_timeout_s + settings.webhook_read_timeout_s


def record(
    session: Session,
    settings: WorkerSettings,
    claimed: Claim,
    sent: Sequence[tuple[Request, Outcome]],
) -> list[Verdict]:
    """Log each attempt and settle its delivery (delivered, failed, or due again later); the
    deliveries not sent (the batch stopped, or ran out of time) are due again at once, no attempt
    counted."""
    now = utcnow()
    ids = [request.delivery_id for request in claimed.requests]
    deliveries = {
        d.id: d
        for d in session.exec(
            select(WebhookDelivery).where(col(WebhookDelivery.id).in_(ids)).with_for_update()
        )
    }
    endpoint = session.exec(
        select(WebhookEndpoint).where(WebhookEndpoint.id == claimed.endpoint_id).with_for_update()
    ).one()
    verdicts = []
    for request, outcome in sent:
        delivery = deliveries[request.delivery_id]
        session.add(attempt(request, outcome, now))
        verdict = outcome.verdict
        verdicts.append(verdict)
        error = outcome.error or (
            f"HTTP {outcome.status}" if verdict != Verdict.DELIVERED else None
        )
        if verdict == Verdict.DELIVERED:
            _finish(delivery, DeliveryStatus.DELIVERED, None)
            delivery.delivered_at = now
            endpoint.consecutive_failures = 0
        elif verdict == Verdict.RETRY and (when := _next(settings, delivery, outcome, now)):
            _release(delivery)
            delivery.next_attempt_at, delivery.last_error = when, error
        else:
            _finish(delivery, DeliveryStatus.FAILED, error)
            endpoint.consecutive_failures += 1
            if verdict == Verdict.GONE:
                _disable(endpoint, "the receiver answered 410 Gone")
            elif endpoint.consecutive_failures >= settings.webhook_disable_after_failures:
                _disable(endpoint, f"{endpoint.consecutive_failures} consecutive failed deliveries")
    for request in claimed.requests[len(sent) :]:
        delivery = deliveries[request.delivery_id]
        _release(delivery)
        delivery.attempts -= 1
        delivery.next_attempt_at = now
    session.add_all([*deliveries.values(), endpoint])
    session.commit()
    return verdicts


def attempt(request: Request, outcome: Outcome, now: datetime) -> WebhookAttempt:
    return WebhookAttempt(
        delivery_id=request.delivery_id,
        attempted_at=now,
        request_headers={k: v for k, v in request.headers.items() if k != "webhook-signature"},
        response_status=outcome.status,
        response_body_excerpt=outcome.body_excerpt,
        duration_ms=outcome.duration_ms,
        error=outcome.error,
    )


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


def _release(delivery: WebhookDelivery) -> None:
    delivery.in_flight_until = delivery.claim_id = None


def _finish(delivery: WebhookDelivery, status: DeliveryStatus, error: str | None) -> None:
    delivery.status, delivery.last_error = status, error
    delivery.next_attempt_at = None
    _release(delivery)


def _disable(endpoint: WebhookEndpoint, reason: str) -> None:
    endpoint.enabled, endpoint.disabled_reason = False, reason
    endpoint.updated_at = utcnow()
    log.warning("webhook endpoint %s disabled: %s", endpoint.id, reason)


def deliver(
    sessions: sessionmaker[Session],
    http: httpx.Client,
    settings: WorkerSettings,
    delivery_ids: Sequence[uuid.UUID],
) -> None:
    """One attempt for each delivery claimed, one after another, until the receiver fails or the
    batch's budget would be overrun. A database error before a request goes out is the task's to
    retry; after, the outcomes are recorded with retries here, so no attempt is lost or repeated
    (a claim left in flight is sent again when its lease runs out)."""
    with sessions() as session:
        claimed = claim(session, settings, delivery_ids)
    if claimed is None:
        return
    deadline = time.monotonic() + settings.webhook_batch_budget_s
    sent: list[tuple[Request, Outcome]] = []
    for request in claimed.requests:
        if sent and time.monotonic() + per_request_s(settings) > deadline:
            break
        outcome = send(http, settings, request)
        sent.append((request, outcome))
        if outcome.verdict in STOPS:
            break
    verdicts = record_with_retries(sessions, settings, claimed, sent)
    for (request, outcome), verdict in zip(sent, verdicts, strict=True):
        log.info(
            "webhook %s: %s (%s)", request.delivery_id, verdict, outcome.status or outcome.error
        )
    if len(sent) < len(claimed.requests):
        log.info("webhooks: %d of the batch due again", len(claimed.requests) - len(sent))


def record_with_retries(
    sessions: sessionmaker[Session],
    settings: WorkerSettings,
    claimed: Claim,
    sent: Sequence[tuple[Request, Outcome]],
) -> list[Verdict]:
    deadline, wait = time.monotonic() + settings.webhook_record_retry_s, 0.25
    while True:
        try:
            with sessions() as session:
                return record(session, settings, claimed, sent)
        except OperationalError as error:
            if time.monotonic() + wait > deadline:
                raise
            log.warning(
                "%d webhooks sent, not recorded yet (again in %.2f s): %r",
                len(sent),
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
