"""ASGI middleware: the 500 ms budget measured (a request id on every request, `Server-Timing` on
every response, a latency histogram per route, a log line and a count for every request over the
budget), and a deadline on every request. What a request must be before anything reads it is in
orders.api.gates."""

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Callable

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orders.api.problems import problem_response, service_unavailable
from orders.context import request_id

log = logging.getLogger("orders.budget")

LATENCY = Histogram(
    "orders_http_request_duration_seconds",
    "Time to the response's first byte, per route",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
OVER_BUDGET = Counter(
    "orders_http_over_budget_total", "Requests slower than REQUEST_BUDGET_MS", ["method", "route"]
)
VALID_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
PAST_DEADLINE = Counter(
    "orders_http_past_deadline_total", "Requests answered 503 at REQUEST_DEADLINE_S", ["method"]
)


def on_last_byte(receive: Receive, then: Callable[[], None]) -> Receive:
    """`receive`, calling `then` when the request's body has arrived in full."""

    async def receiving() -> Message:
        message = await receive()
        if message["type"] == "http.request" and not message.get("more_body", False):
            then()
        return message

    return receiving


class RequestObserver:
    """Times every request to its response's first byte; an upload streamed to the app (`streamed`
    paths) from its body's last byte, since the client sets the pace before that."""

    def __init__(self, app: ASGIApp, budget_ms: int, streamed: re.Pattern[str]) -> None:
        self.app = app
        self.budget_s = budget_ms / 1000
        self.streamed = streamed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = incoming if VALID_ID.match(incoming) else uuid.uuid4().hex
        token = request_id.set(rid)

        def restart() -> None:
            nonlocal started
            started = time.perf_counter()

        if self.streamed.match(scope["path"]):
            receive = on_last_byte(receive, restart)

        async def send_timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                elapsed = time.perf_counter() - started
                headers = list(message.get("headers", []))
                headers.append((b"server-timing", f"app;dur={elapsed * 1000:.1f}".encode()))
                headers.append((b"x-request-id", rid.encode()))
                message["headers"] = headers
                route = getattr(scope.get("route"), "path", "unmatched")
                LATENCY.labels(scope["method"], route, str(message["status"])).observe(elapsed)
                if elapsed > self.budget_s:
                    OVER_BUDGET.labels(scope["method"], route).inc()
                    log.warning(
                        "%s %s took %.0f ms, over the %.0f ms budget",
                        scope["method"],
                        route,
                        elapsed * 1000,
                        self.budget_s * 1000,
                    )
            await send(message)

        try:
            await self.app(scope, receive, send_timed)
        finally:
            request_id.reset(token)


class Deadline:
    """Answers 503 when the app has not begun its response within `deadline_s`, and lets go of
    the request: a database that went silent (a partition) would hold it in the driver for as
    long as it stays silent. The request is cancelled in the background, where the driver gives
    up its connection. Once the response has begun, the request runs to its end, background
    tasks included. A POST to a `streamed` path (an upload the app reads as it arrives) has its
    deadline counted from the body's last byte."""

    def __init__(
        self, app: ASGIApp, deadline_s: float, retry_after_s: int, streamed: re.Pattern[str]
    ) -> None:
        self.app = app
        self.deadline_s = deadline_s
        self.retry_after_s = retry_after_s
        self.streamed = streamed
        self.abandoned: set[asyncio.Task[None]] = set()  # held until their cleanup is done

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = asyncio.Event()
        abandoned = False

        async def send_unless_abandoned(message: Message) -> None:
            if abandoned:
                return
            began.set()
            await send(message)

        streamed = scope["method"] == "POST" and bool(self.streamed.match(scope["path"]))
        if streamed:
            received = asyncio.Event()
            receive = on_last_byte(receive, received.set)
        request = asyncio.ensure_future(self.app(scope, receive, send_unless_abandoned))
        if streamed:
            arrived = asyncio.ensure_future(received.wait())
            await asyncio.wait({request, arrived}, return_when="FIRST_COMPLETED")
            arrived.cancel()
        beginning = asyncio.ensure_future(began.wait())
        await asyncio.wait(
            {request, beginning}, timeout=self.deadline_s, return_when="FIRST_COMPLETED"
        )
        beginning.cancel()
        if request.done() or began.is_set():
            await request
            return
        abandoned = True
        request.cancel()
        self.abandoned.add(request)
        request.add_done_callback(self._forget)
        PAST_DEADLINE.labels(scope["method"]).inc()
        log.warning(
            "%s %s: no answer within %.1f s; 503", scope["method"], scope["path"], self.deadline_s
        )
        detail = (
            "The request could not be served in time (is the database reachable?); retry later."
        )
        problem = service_unavailable(detail, self.retry_after_s)
        await problem_response(problem, scope["path"])(scope, receive, send)

    def _forget(self, request: asyncio.Task[None]) -> None:
        self.abandoned.discard(request)
        if not request.cancelled() and (error := request.exception()) is not None:
            log.info("an abandoned request ended with %r", error)
