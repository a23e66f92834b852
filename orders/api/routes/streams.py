"""Live order status for the storefront: `GET /orders/{id}/stream`, Server-Sent Events of the
order's timeline. Each event's `id:` is its per-order sequence number, so a client that comes back
with `Last-Event-ID` gets exactly the events after it. The stream ends once the order is at rest
(orders.states.at_rest); coming back after that gets 204, which tells an EventSource to stop. It
also ends after STREAM_MAX_S, and the client comes back for the rest."""

import json
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from orders import access
from orders.api.dependencies import bearer_token
from orders.api.live import Hub
from orders.api.problems import not_found
from orders.api.schemas import OrderEventPublic
from orders.db import run
from orders.models import Order, OrderEvent, OrderStatus
from orders.states import at_rest

log = logging.getLogger(__name__)
router = APIRouter()

SEQ_MAX = 2**31 - 1  # order_event.seq is an INTEGER: a larger Last-Event-ID is refused with 422
RETRY_MS = 3_000  # how long an EventSource waits before it comes back
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # nginx: no buffering


async def events_after(
    sessions: async_sessionmaker[AsyncSession], order_id: uuid.UUID, after: int
) -> tuple[list[OrderEvent], bool]:
    """The events after sequence number `after`, and whether the order was at rest, read before
    them: each statement sees what had committed when it began, so every event of that state
    (committed with it) is among the events, and a stream that ends at rest has sent them all."""
    async with sessions() as session:
        state = select(Order.status, Order.ships, Order.shipped_at).where(Order.id == order_id)
        status, ships, shipped_at = (await session.exec(state)).one()
        events = await session.exec(
            select(OrderEvent)
            .where(OrderEvent.order_id == order_id, col(OrderEvent.seq) > after)
            .order_by(col(OrderEvent.seq))
        )
        found = list(events)
    return found, at_rest(OrderStatus(status), ships, shipped_at is not None)


def sse(event: OrderEvent) -> str:
    data = OrderEventPublic.model_validate(event, from_attributes=True).model_dump(mode="json")
    return f"id: {event.seq}\nevent: {event.type}\ndata: {json.dumps(data)}\n\n"


async def follow(
    hub: Hub,
    sessions: async_sessionmaker[AsyncSession],
    order_id: uuid.UUID,
    after: int,
    heartbeat_s: float,
    max_s: float,
) -> AsyncIterator[str]:
    """Reads the order when woken (its event committed) and only then: a quiet stream costs no
    query, just a comment line every `heartbeat_s` at most (jittered: streams opened together,
    as after a restart, must not all write at the same moment), so a thousand open streams do
    not take the pool's connections in turns. A database that fails it ends the stream; the
    client comes back (after `retry:` ms) with its Last-Event-ID, losing nothing."""
    yield f"retry: {RETRY_MS}\n\n"
    with hub.watch(str(order_id)) as woken:
        started = time.monotonic()
        while True:
            try:
                events, rest = await events_after(sessions, order_id, after)
            except (SQLAlchemyError, OSError) as error:
                log.info("order stream %s ended by the database: %r", order_id, error)
                return
            for event in events:
                yield sse(event)
                after = event.seq or after  # an order's events all have one
            if rest:
                return
            while not await hub.wait(woken, heartbeat_s * random.uniform(0.5, 1.0)):
                if time.monotonic() - started >= max_s:
                    return
                yield ": keep-alive\n\n"  # a comment: proxies see traffic, clients ignore it
            if time.monotonic() - started >= max_s:
                return


@router.get(
    "/orders/{order_id}/stream",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The order's events, live"},
        204: {"description": "The order is at rest and every event was sent: stop reconnecting"},
        404: {"description": "No order with this id for this token"},
    },
)
async def stream_order(
    order_id: uuid.UUID,
    request: Request,
    access_token: Annotated[
        str | None,
        Query(description="The order's token, for EventSource, which cannot send headers"),
    ] = None,
    last_event_id: Annotated[
        int | None,
        Header(alias="Last-Event-ID", ge=0, le=SEQ_MAX, description="The last `id:` received"),
    ] = None,
) -> Response:
    sessions = request.app.state.sessions
    token = bearer_token(request) or access_token
    async with sessions() as session:  # released before the stream begins
        order = await run(session, access.find_order, order_id, token)
    if order is None:
        raise not_found("order with this id for this token")
    after = last_event_id or 0
    stream: AsyncIterator[str]
    if at_rest(order.status, order.ships, order.shipped_at is not None):
        # Nothing more will come: what is there, read once, and the end.
        events, _ = await events_after(sessions, order_id, after)
        if not events:
            return Response(status_code=204)
        stream = replay(events)
    else:
        s = request.app.state.settings
        stream = follow(
            request.app.state.hub, sessions, order_id, after, s.stream_heartbeat_s, s.stream_max_s
        )
    return StreamingResponse(stream, media_type="text/event-stream", headers=STREAM_HEADERS)


async def replay(events: list[OrderEvent]) -> AsyncIterator[str]:
    yield f"retry: {RETRY_MS}\n\n"
    for event in events:
        yield sse(event)
