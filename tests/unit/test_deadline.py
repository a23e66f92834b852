"""The request deadline (orders.api.middleware.Deadline) around an app that takes its time: an
upload streamed to the app counts its deadline from the body's last byte, every other request
from its start, GETs of the upload's path included."""

import asyncio
import re
from collections.abc import MutableMapping
from typing import Any

from orders.api.middleware import Deadline

UPLOAD = re.compile(r"^/up$")


async def answer_after(seconds: float, scope: Any, receive: Any, send: Any) -> None:
    """An app that reads the whole body, waits `seconds`, then answers 200."""
    if scope["method"] == "POST":
        while (await receive()).get("more_body", False):
            pass
    await asyncio.sleep(seconds)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def call(app_seconds: float, method: str, path: str, body_s: float = 0.0) -> int:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await answer_after(app_seconds, scope, receive, send)

    deadline = Deadline(app, deadline_s=1.0, retry_after_s=5, streamed=UPLOAD)
    chunks = 6

    async def receive() -> dict[str, Any]:
        nonlocal chunks
        await asyncio.sleep(body_s / 6)  # the client sends the body over `body_s`
        chunks -= 1
        return {"type": "http.request", "body": b"x" * 10, "more_body": chunks > 0}

    statuses: list[int] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    scope = {"type": "http", "method": method, "path": path, "headers": []}
    await deadline(scope, receive, send)
    return statuses[0]


async def test_a_slow_upload_is_not_cut_but_a_slow_answer_after_it_is():
    assert await call(0.0, "POST", "/up", body_s=1.8) == 200  # 1.8 s of body, answered at once
    assert await call(3.0, "POST", "/up", body_s=0.6) == 503  # then 3 s of work: past 1 s


async def test_other_requests_count_from_their_start_even_on_the_upload_path():
    assert await call(3.0, "GET", "/up") == 503
    assert await call(1.8, "POST", "/other", body_s=0.0) == 503
    assert await call(0.0, "GET", "/up") == 200
