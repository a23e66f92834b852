"""Refuse oversized bodies before anything parses them."""

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orders.problems import Problem, problem_response


class BodySizeLimit:
    """Buffers up to `max_bytes` of the body (checkout bodies are small) and answers 413 past it,
    whether the client announced a Content-Length or streamed chunks."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, uploads: tuple[re.Pattern[str], int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.uploads = uploads  # paths that take files, with their own larger limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        if self.uploads and self.uploads[0].match(scope["path"]):
            limit = self.uploads[1]
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._too_large(scope, receive, send, limit)
            return

        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._too_large(scope, receive, send, limit)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break

        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        problem = Problem(
            413,
            "body-too-large",
            "Request body too large",
            f"The body must be at most {limit} bytes.",
        )
        await problem_response(problem, scope["path"])(scope, receive, send)
