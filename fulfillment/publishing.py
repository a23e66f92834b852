"""Publishing on the relay's own connection, each message confirmed by the broker within
BROKER_CONFIRM_TIMEOUT_S: an outbox row's message (the request id and order id travel along as
message headers, for the workers' logs), and the webhook deliveries that are due, grouped by
endpoint."""

import logging
import uuid
from datetime import timedelta
from typing import Any

from kombu.messaging import Producer
from sqlalchemy import or_, update
from sqlmodel import Session, col, select

from fulfillment.celery_app import app
from fulfillment.config import settings
from fulfillment.observability import correlation_headers
from orders import context
from orders.messages import DELIVER_WEBHOOKS, UnknownMessage, parse
from orders.models import DeliveryStatus, WebhookDelivery, table, utcnow

log = logging.getLogger("fulfillment.relay")

DELIVERY_LEASE = timedelta(minutes=5)


def publish(row_id: int, kind: str, payload: dict[str, Any], producer: Producer) -> None:
    """One outbox row -> its message, confirmed by the broker before this returns. The request
    id and order id travel along as message headers, for the workers' logs. (Rows that say
    webhook deliveries are due publish nothing themselves: see relay.relay_batch.)"""
    try:
        message = parse(kind, payload)
    except UnknownMessage:
        log.error("outbox row %s has an unknown kind %r; leaving it unpublished", row_id, kind)
        raise
    context.request_id.set(message.request_id)
    about = message.about()
    context.order_id.set(str(about) if about else None)
    headers = correlation_headers()
    priority = message.task.priority if settings.step_priorities else 0
    send(producer, message.task.name, message.task_args(), headers, priority)
    log.info("published %s", message.task.name)


def send(
    producer: Producer,
    task: str,
    args: tuple[str, ...],
    headers: dict[str, str] | None,
    priority: int = 0,
) -> None:
    """Publish one task on the relay's own connection; the broker's confirm is waited for, at
    most BROKER_CONFIRM_TIMEOUT_S, and a publish that fails is tried again on a new connection
    (kombu's retry policy), logged. The queues are declared once per connection (`declare`),
    not checked before every message as Celery would."""
    timeout = settings.broker_confirm_timeout_s
    app.send_task(
        task,
        args=args,
        headers=headers,
        priority=priority,
        producer=producer,
        declare=[],
        confirm_timeout=timeout,
        timeout=timeout,
        retry_policy=app.conf.task_publish_retry_policy | {"errback": _publish_failed},
    )


def declare(producer: Producer) -> None:
    """Every queue of the messaging contract, on the producer's channel: a message published
    to a queue that does not exist yet (no worker ever started) would be dropped."""
    for queue in app.conf.task_queues:
        queue(producer.channel).declare()


def _publish_failed(error: BaseException, interval: float) -> None:
    log.warning("publish failed (%r); again on a new connection in %.1f s", error, interval)


def publish_deliveries(session: Session, which: Any, producer: Producer, limit: int = 500) -> int:
    """Send the pending deliveries matched by `which` that are not in flight: a message per
    endpoint and WEBHOOK_BATCH_SIZE deliveries, in the order of their events. Their next attempt
    is pushed a lease away, so the sweep does not send them again while they wait in the queue
    (it will if they get lost)."""
    now = utcnow()
    due = session.exec(
        select(WebhookDelivery.id, WebhookDelivery.endpoint_id)
        .where(
            WebhookDelivery.status == DeliveryStatus.PENDING,
            which,
            or_(
                col(WebhookDelivery.in_flight_until).is_(None),
                col(WebhookDelivery.in_flight_until) < now,
            ),
        )
        .order_by(col(WebhookDelivery.event_id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    by_endpoint: dict[uuid.UUID, list[str]] = {}
    for delivery_id, endpoint_id in due:
        by_endpoint.setdefault(endpoint_id, []).append(str(delivery_id))
    size = settings.webhook_batch_size
    for ids in by_endpoint.values():
        for start in range(0, len(ids), size):
            send(producer, DELIVER_WEBHOOKS.name, tuple(ids[start : start + size]), None)
    if due:
        deliveries = table(WebhookDelivery)
        session.exec(
            update(deliveries)
            .where(deliveries.c.id.in_([delivery_id for delivery_id, _ in due]))
            .values(next_attempt_at=now + DELIVERY_LEASE)
        )
    return len(due)
