"""The 500 ms budget, measured: a request id on every request, `Server-Timing` on every response,
a latency histogram per route, and a log line and a count for every request over the budget."""

import logging
import re
import time
import uuid

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


class RequestObserver:
    def __init__(self, app: ASGIApp, budget_ms: int) -> None:
        self.app = app
        self.budget_s = budget_ms / 1000

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = incoming if VALID_ID.match(incoming) else uuid.uuid4().hex
        token = request_id.set(rid)

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
