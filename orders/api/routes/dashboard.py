"""The operators' pages: sign-in, the dashboard, the orders list and each order's page, rendered on
the server (Jinja2), with their CSS and JS served by the app under a Content-Security-Policy
without `unsafe-inline`; and `/ops/stream`, Server-Sent Events of the dashboard's figures. The
OpsGate middleware has checked the session (or the key) before any of these but the sign-in."""

import asyncio
import contextlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse
from fastapi.templating import Jinja2Templates
from sqlmodel import select

from orders import figures
from orders.api.dependencies import SessionDep
from orders.api.live import ANY
from orders.api.ops_session import COOKIE, csrf_matches
from orders.api.pagination import newest_first
from orders.api.routes.ops import order_detail, queue_depths
from orders.api.routes.streams import STREAM_HEADERS
from orders.db import run
from orders.models import Order, OrderStatus
from orders.money import format_money
from orders.view import invoice_number_text

log = logging.getLogger(__name__)
router = APIRouter(prefix="/ops", include_in_schema=False)
WEB = Path(__file__).resolve().parent.parent / "web"
templates = Jinja2Templates(directory=WEB / "templates")
NONE = "\N{EN DASH}"  # a figure not known yet
templates.env.filters |= {
    "ms": lambda v: NONE if v is None else (f"{v / 1000:.1f} s" if v >= 10_000 else f"{v:.0f} ms"),
    "percent": lambda v: NONE if v is None else f"{v * 100:.1f} %",
    "when": lambda v: (datetime.fromisoformat(v) if isinstance(v, str) else v).strftime(
        "%Y-%m-%d %H:%M:%S"
    ),
    "money": lambda amount, currency: format_money(amount, currency),
    "invoice_number": invoice_number_text,
}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
STATUSES = [s.value for s in OrderStatus]
PUSH_EVERY_S, REFRESH_S = 1.0, 5.0  # at most once a second; queue depths every 5 s regardless


def page(request: Request, name: str, code: int = 200, **context: Any) -> HTMLResponse:
    session = request.scope.get("state", {}).get("ops_session")
    context |= {"csrf": session.csrf if session else None}
    response = templates.TemplateResponse(request, name, context, status_code=code)
    response.headers.update(PAGE_HEADERS)
    return response


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path of the ops pages only, never another site."""
    if target and target.startswith("/ops/") and not target.startswith("//"):
        return target
    return "/ops/dashboard"


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str | None = None) -> HTMLResponse:
    return page(request, "login.html", next=safe_next(next), error=None)


@router.post("/login", response_model=None)
async def login(request: Request) -> Response:
    form = await request.form()
    key, target = str(form.get("key", "")), safe_next(str(form.get("next", "")))
    address = request.client.host if request.client else "unknown"
    throttle = request.app.state.login_throttle
    if delay := throttle.delay_s(address):
        await asyncio.sleep(delay)  # an address that keeps failing waits longer each time
    settings = request.app.state.settings
    if not hmac.compare_digest(key.encode(), settings.ops_api_key.encode()):
        throttle.failed(address)
        log.warning("ops sign-in refused: wrong key")
        return page(request, "login.html", 401, next=target, error="That key is not right.")
    throttle.succeeded(address)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        request.app.state.ops_sessions.issue(),
        max_age=round(settings.ops_session_hours * 3600),
        path="/ops",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout", response_model=None)
async def logout(request: Request) -> Response:
    form = await request.form()
    session = request.scope.get("state", {}).get("ops_session")
    if session is not None and not csrf_matches(session, str(form.get("csrf_token", ""))):
        return Response("CSRF token missing or wrong", status_code=403)
    response = RedirectResponse("/ops/login", status_code=303)
    response.delete_cookie(COOKIE, path="/ops", httponly=True, samesite="strict")
    return response


class FiguresCache:
    """The dashboard's figures, computed at most once a second per API process whatever the
    number of open dashboards: each page and stream shares the last computation, and one
    computes while the others wait for it."""

    def __init__(self) -> None:
        self.at, self.lock = 0.0, asyncio.Lock()
        self.figures: dict[str, Any] | None = None

    async def get(self, request: Request) -> dict[str, Any]:
        async with self.lock:
            if self.figures is None or time.monotonic() - self.at >= PUSH_EVERY_S:
                async with request.app.state.sessions() as session:
                    found = await run(session, figures.dashboard)
                broker = request.app.state.settings.broker_url
                found["queue_depths"] = await asyncio.to_thread(queue_depths, broker)
                self.at, self.figures = time.monotonic(), found
            assert self.figures is not None
            return dict(self.figures)


async def dashboard_figures(request: Request) -> dict[str, Any]:
    cache: FiguresCache = request.app.state.dashboard_figures
    return await cache.get(request)


@router.get("/dashboard", response_class=HTMLResponse)
async def dashboard(request: Request) -> HTMLResponse:
    return page(
        request, "dashboard.html", figures=await dashboard_figures(request), statuses=STATUSES
    )


@router.get("/dashboard/orders", response_class=HTMLResponse)
async def orders_page(
    request: Request, session: SessionDep, status: str = "", cursor: str | None = None
) -> HTMLResponse:
    query = select(Order)
    if status in STATUSES:
        query = query.where(Order.status == status)
    orders, next_cursor = await newest_first(session, query, Order, cursor, 50)
    next_query = urlencode({"status": status, "cursor": next_cursor or ""})
    return page(
        request,
        "orders.html",
        orders=orders,
        statuses=STATUSES,
        status=status if status in STATUSES else "",
        next_cursor=next_cursor,
        next_query=next_query,
    )


@router.get("/dashboard/orders/{order_id}", response_class=HTMLResponse)
async def order_page(request: Request, order_id: uuid.UUID, session: SessionDep) -> HTMLResponse:
    return page(request, "order.html", o=await order_detail(order_id, session))


async def push(request: Request, order: str | None) -> AsyncIterator[str]:
    """`figures` whenever an order event commits (at most once a second) and every few seconds
    regardless (queue depths move without events), every second while a stock import runs;
    `order` when the watched order changes."""
    hub = request.app.state.hub
    last: str | None = None
    with hub.watch(ANY) as woken, contextlib.ExitStack() as stack:
        watched = stack.enter_context(hub.watch(order)) if order else None
        while True:
            shown = await dashboard_figures(request)
            data = json.dumps(shown, default=str)
            if data != last:
                yield f"event: figures\ndata: {data}\n\n"
                last = data
            else:
                yield ": keep-alive\n\n"
            if watched is not None and watched.is_set():
                watched.clear()
                yield "event: order\ndata: {}\n\n"
            await asyncio.sleep(PUSH_EVERY_S)
            if not any(job["cancellable"] for job in shown["imports"]):
                await hub.wait(woken, REFRESH_S - PUSH_EVERY_S)  # else: an import's bar moves


@router.get("/stream")
async def stream(request: Request, order: uuid.UUID | None = None) -> StreamingResponse:
    body = push(request, str(order) if order else None)
    return StreamingResponse(body, media_type="text/event-stream", headers=STREAM_HEADERS)
