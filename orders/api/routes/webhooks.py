"""The operators' API for webhooks (`X-API-Key`): endpoints, deliveries, redelivery and replay."""

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select

from orders.api.auth import require_ops_key
from orders.api.dependencies import AuditDep, SessionDep, SettingsDep
from orders.api.pagination import newest_first
from orders.api.problems import invalid, not_found
from orders.api.schemas import (
    EventType,
    ReplayRequest,
    WebhookAttemptPublic,
    WebhookDeliveryDetail,
    WebhookDeliveryPage,
    WebhookDeliveryPublic,
    WebhookEndpointCreate,
    WebhookEndpointPublic,
    WebhookEndpointUpdate,
    WebhookEndpointWithSecret,
)
from orders.events import new_delivery
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
    EVENT_TYPES,
    Allowed,
    RefusedDestination,
    check_addresses,
    check_url,
    message_id,
    new_secret,
)

router = APIRouter(prefix="/ops", tags=["ops: webhooks"], dependencies=[Depends(require_ops_key)])


async def checked_url(url: str, allowed: Allowed) -> str:
    """Refuse what the workers would refuse, now rather than at the first delivery."""
    try:
        host = check_url(url, allowed).host
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None)
        except OSError as exc:
            raise RefusedDestination(f"{host} does not resolve") from exc
        check_addresses(host, [str(info[4][0]) for info in infos], allowed)
    except RefusedDestination as refused:
        raise invalid("url", str(refused)) from refused
    return url


def checked_types(types: list[str]) -> list[str]:
    for i, name in enumerate(types):
        if name not in EVENT_TYPES:
            raise invalid(
                f"event_types[{i}]", f"unknown event type; one of {', '.join(EVENT_TYPES)}"
            )
    return sorted(set(types))


async def endpoint_or_404(session: SessionDep, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    endpoint = await session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise not_found("webhook endpoint with this id")
    return endpoint


EndpointDep = Annotated[WebhookEndpoint, Depends(endpoint_or_404)]


def public(endpoint: WebhookEndpoint) -> WebhookEndpointPublic:
    return WebhookEndpointPublic.model_validate(endpoint, from_attributes=True)


@router.post("/webhook-endpoints", status_code=201, response_model=WebhookEndpointWithSecret)
async def create_endpoint(
    body: WebhookEndpointCreate, session: SessionDep, settings: SettingsDep, audit: AuditDep
) -> WebhookEndpointWithSecret:
    endpoint = WebhookEndpoint(
        url=await checked_url(body.url, settings.allowed_destinations()),
        event_types=checked_types(body.event_types),
        description=body.description,
        enabled=body.enabled,
        secret=new_secret(),
    )
    session.add(endpoint)
    await session.commit()
    audit("webhook_endpoint.created", target=str(endpoint.id), detail={"url": endpoint.url})
    return WebhookEndpointWithSecret(**public(endpoint).model_dump(), secret=endpoint.secret)


@router.get("/webhook-endpoints", response_model=list[WebhookEndpointPublic])
async def list_endpoints(session: SessionDep) -> list[WebhookEndpointPublic]:
    rows = await session.exec(select(WebhookEndpoint).order_by(col(WebhookEndpoint.created_at)))
    return [public(endpoint) for endpoint in rows]


@router.get("/webhook-endpoints/{endpoint_id}", response_model=WebhookEndpointPublic)
async def get_endpoint(endpoint: EndpointDep) -> WebhookEndpointPublic:
    return public(endpoint)


@router.patch("/webhook-endpoints/{endpoint_id}", response_model=WebhookEndpointPublic)
async def update_endpoint(
    body: WebhookEndpointUpdate,
    endpoint: EndpointDep,
    session: SessionDep,
    settings: SettingsDep,
    audit: AuditDep,
) -> WebhookEndpointPublic:
    if body.url is not None:
        endpoint.url = await checked_url(body.url, settings.allowed_destinations())
    if body.event_types is not None:
        endpoint.event_types = checked_types(body.event_types)
    if body.description is not None:
        endpoint.description = body.description
    if body.enabled is not None:
        endpoint.enabled = body.enabled
        if body.enabled:  # an operator turning it back on starts a fresh count
            endpoint.disabled_reason, endpoint.consecutive_failures = None, 0
        else:
            endpoint.disabled_reason = "disabled by an operator"
    endpoint.updated_at = utcnow()
    session.add(endpoint)
    await session.commit()
    audit(
        "webhook_endpoint.updated",
        target=str(endpoint.id),
        detail=body.model_dump(exclude_none=True),
    )
    return public(endpoint)


@router.delete("/webhook-endpoints/{endpoint_id}", status_code=204)
async def delete_endpoint(endpoint: EndpointDep, session: SessionDep, audit: AuditDep) -> Response:
    await session.delete(endpoint)
    await session.commit()
    audit("webhook_endpoint.deleted", target=str(endpoint.id))
    return Response(status_code=204)


@router.post(
    "/webhook-endpoints/{endpoint_id}/rotate-secret", response_model=WebhookEndpointWithSecret
)
async def rotate_secret(
    endpoint: EndpointDep, session: SessionDep, settings: SettingsDep, audit: AuditDep
) -> WebhookEndpointWithSecret:
    """A new secret; the old one keeps signing too for the grace period, so receivers can switch
    without missing a message."""
    now = utcnow()
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = now + timedelta(hours=settings.webhook_secret_grace_hours)
    endpoint.secret = new_secret()
    endpoint.updated_at = now
    session.add(endpoint)
    await session.commit()
    audit("webhook_endpoint.secret_rotated", target=str(endpoint.id))
    return WebhookEndpointWithSecret(**public(endpoint).model_dump(), secret=endpoint.secret)


@router.post("/webhook-endpoints/{endpoint_id}/replay", status_code=202)
async def replay(
    body: ReplayRequest, endpoint: EndpointDep, session: SessionDep, audit: AuditDep
) -> dict[str, int]:
    """Send again every event of the endpoint's types in [since, until), under the original
    `webhook-id`s, so receivers that have them already can drop them."""
    if body.until <= body.since:
        raise invalid("until", "must be after since")
    now = utcnow()
    found = (
        await session.exec(
            select(col(OrderEvent.id), OrderEvent.type).where(
                col(OrderEvent.occurred_at) >= body.since,
                col(OrderEvent.occurred_at) < body.until,
                col(OrderEvent.type).in_(endpoint.event_types),
            )
        )
    ).all()
    if found:
        rows = [new_delivery(cast(int, id_), endpoint.id, type_, now) for id_, type_ in found]
        dialect = session.sync_session.get_bind().dialect.name
        stmt = (sqlite_insert if dialect == "sqlite" else pg_insert)(table(WebhookDelivery)).values(
            rows
        )
        await session.exec(
            stmt.on_conflict_do_update(
                index_elements=["event_id", "endpoint_id"],
                set_=_due_again(now),
            )
        )
    await session.commit()
    audit("webhook_endpoint.replayed", target=str(endpoint.id), detail=body.model_dump(mode="json"))
    return {"deliveries": len(found)}


def _due_again(now: datetime) -> dict[str, Any]:
    """Pending, due now, a fresh retry horizon; the sweep sends it within a second."""
    return {
        "status": DeliveryStatus.PENDING,
        "next_attempt_at": now,
        "retry_until": None,
        "last_error": None,
        "in_flight_until": None,
        "claim_id": None,
    }


def delivery_public(delivery: WebhookDelivery) -> WebhookDeliveryPublic:
    return WebhookDeliveryPublic(
        **delivery.model_dump(exclude={"retry_until", "in_flight_until", "claim_id"}),
        webhook_id=message_id(delivery.id),
    )


@router.get("/webhook-deliveries", response_model=WebhookDeliveryPage)
async def list_deliveries(
    session: SessionDep,
    status: DeliveryStatus | None = None,
    endpoint_id: uuid.UUID | None = None,
    event_type: EventType | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> WebhookDeliveryPage:
    """Newest first; pass `next_cursor` back as `cursor` for the next page."""
    query = select(WebhookDelivery)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    if endpoint_id is not None:
        query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
    if event_type is not None:
        query = query.where(WebhookDelivery.event_type == event_type)
    page, next_cursor = await newest_first(session, query, WebhookDelivery, cursor, limit)
    return WebhookDeliveryPage(
        items=[delivery_public(d) for d in page],
        next_cursor=next_cursor,
    )


@router.get("/webhook-deliveries/{delivery_id}", response_model=WebhookDeliveryDetail)
async def get_delivery(delivery_id: uuid.UUID, session: SessionDep) -> WebhookDeliveryDetail:
    delivery = await session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        raise not_found("webhook delivery with this id")
    attempts = await session.exec(
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id == delivery_id)
        .order_by(col(WebhookAttempt.attempted_at))
    )
    return WebhookDeliveryDetail(
        **delivery_public(delivery).model_dump(),
        attempt_log=[
            WebhookAttemptPublic.model_validate(a, from_attributes=True) for a in attempts
        ],
    )


@router.post("/webhook-deliveries/{delivery_id}/redeliver", status_code=202)
async def redeliver(delivery_id: uuid.UUID, session: SessionDep, audit: AuditDep) -> dict[str, str]:
    deliveries = table(WebhookDelivery)
    result = await session.exec(
        update(deliveries).where(deliveries.c.id == delivery_id).values(**_due_again(utcnow()))
    )
    if not result.rowcount:
        raise not_found("webhook delivery with this id")
    await session.commit()
    audit("webhook_delivery.redelivered", target=str(delivery_id))
    return {"id": str(delivery_id), "status": DeliveryStatus.PENDING}
