"""What routes receive: a session, the gateway, the settings, a loaded order, the auditor."""

import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import BackgroundTasks, Depends, Header, Request
from sqlmodel.ext.asyncio.session import AsyncSession

from orders import access, context
from orders.api.aftercare import write_audit
from orders.api.background import TaskRegistry
from orders.api.config import ApiSettings
from orders.api.problems import Problem, not_found
from orders.catalog import PriceBook
from orders.db import run
from orders.models import Order
from orders.payments import Authorizer


async def get_settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.settings
    return settings


async def get_gateway(request: Request) -> Authorizer:
    gateway: Authorizer = request.app.state.gateway
    return gateway


async def get_catalog(request: Request) -> PriceBook:
    catalog: PriceBook = request.app.state.catalog
    return catalog


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessions() as session:
        yield session


async def get_autocommit_session(request: Request) -> AsyncIterator[AsyncSession]:
    """For code whose every write is one statement: see orders.db.make_async_engines."""
    async with request.app.state.autocommit_sessions() as session:
        yield session


class Auditor:
    """Schedules an audit row for after the response: who (storefront or ops) did what."""

    def __init__(self, request: Request, background: BackgroundTasks) -> None:
        self.background = background
        self.sessions = request.app.state.autocommit_sessions  # one INSERT
        self.actor = "ops" if request.url.path.startswith("/ops/") else "storefront"

    def __call__(
        self,
        action: str,
        *,
        order_id: uuid.UUID | None = None,
        target: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        self.background.add_task(
            write_audit,
            self.sessions,
            action=action,
            actor=self.actor,
            request_id=context.request_id.get(),
            order_id=order_id,
            target=target,
            detail=detail,
        )


async def get_auditor(request: Request, background: BackgroundTasks) -> Auditor:
    return Auditor(request, background)


async def get_registry(request: Request) -> TaskRegistry:
    registry: TaskRegistry = request.app.state.registry
    return registry


SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
AuditDep = Annotated[Auditor, Depends(get_auditor)]
RegistryDep = Annotated[TaskRegistry, Depends(get_registry)]
GatewayDep = Annotated[Authorizer, Depends(get_gateway)]
CatalogDep = Annotated[PriceBook, Depends(get_catalog)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
AutocommitSessionDep = Annotated[AsyncSession, Depends(get_autocommit_session)]


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


async def valid_order(order_id: uuid.UUID, request: Request, session: SessionDep) -> Order:
    """The order named in the path, if the caller holds its access token; else 404."""
    order = await run(session, access.find_order, order_id, bearer_token(request))
    if order is None:
        raise not_found("order with this id for this token")
    return order


OrderDep = Annotated[Order, Depends(valid_order)]


IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=r"^[\x21-\x7e]{1,255}$",  # visible ASCII
        description="A fresh UUID per attempt; a retry of the same attempt sends the same key",
    ),
]


async def idempotency_key(request: Request, key: IdempotencyKeyHeader = None) -> str:
    """Exactly one Idempotency-Key: retries of a write are safe only with one."""
    if not key:
        raise Problem(
            400,
            "idempotency-key-missing",
            "Idempotency-Key required",
            "Send an Idempotency-Key header (a fresh UUID per attempt) so retries are safe.",
        )
    if len(request.headers.getlist("idempotency-key")) > 1:
        raise Problem(
            400,
            "idempotency-key-repeated",
            "One Idempotency-Key, please",
            "The request carries several Idempotency-Key headers; send exactly one.",
        )
    return key


IdempotencyKeyDep = Annotated[str, Depends(idempotency_key)]
