"""What a request must be before anything parses it: the operators' key on their paths (401
first, whatever the body), and a body of the right size (413), media type (415) and, for JSON,
shape (400 naming what is wrong: malformed, nested too deep, a number too long)."""

import hmac
import json
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orders.api.problems import Problem, problem_response

BODYLESS = ("GET", "HEAD", "OPTIONS", "DELETE")


def json_problem(body: bytes) -> Problem | None:
    """Why `body` is not JSON this API reads, or None. Parsed by the C parser, which is fast;
    FastAPI parses it again for the route."""
    detail = None
    try:
        json.loads(body)
    except RecursionError:
        detail = "The body nests arrays or objects too deeply."
    except json.JSONDecodeError as error:
        detail = (
            f"The body is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})."
        )
    except ValueError as error:  # digits beyond Python's integer-conversion limit
        detail = f"The body holds a number this API does not read: {error}."
    if detail is None:
        return None
    return Problem(400, "malformed-json", "Malformed JSON", detail)


class BodyGate:
    """Buffers up to `max_bytes` of the body (checkout bodies are small) and answers 413 past it,
    whether the client announced a Content-Length or streamed chunks; then checks its media
    type (JSON, or multipart on the upload paths) and that its JSON parses."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, uploads: re.Pattern[str], upload_max_bytes: int
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.uploads, self.upload_max_bytes = uploads, upload_max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in BODYLESS:
            await self.app(scope, receive, send)
            return
        upload = bool(self.uploads.match(scope["path"]))
        limit = self.upload_max_bytes if upload else self.max_bytes
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, receive, send, too_large(limit))
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
                await self._refuse(scope, receive, send, too_large(limit))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)

        if body:
            media_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            expected = b"multipart/form-data" if upload else b"application/json"
            if media_type != expected:
                problem = Problem(
                    415,
                    "unsupported-media-type",
                    "Unsupported media type",
                    f"Send the body as {expected.decode()}.",
                )
                await self._refuse(scope, receive, send, problem)
                return
            if not upload and (problem_ := json_problem(body)) is not None:
                await self._refuse(scope, receive, send, problem_)
                return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, problem: Problem) -> None:
        await problem_response(problem, scope["path"])(scope, receive, send)


def too_large(limit: int) -> Problem:
    detail = f"The body must be at most {limit} bytes."
    return Problem(413, "body-too-large", "Request body too large", detail)


class OpsKeyGate:
    """The operators' paths answer 401 without their key before anything else is looked at."""

    def __init__(self, app: ASGIApp, key: str, paths: re.Pattern[str]) -> None:
        self.app, self.key, self.paths = app, key.encode(), paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.paths.match(scope["path"]):
            presented = dict(scope["headers"]).get(b"x-api-key", b"")
            if not hmac.compare_digest(presented, self.key):
                await problem_response(unauthorized(), scope["path"])(scope, receive, send)
                return
        await self.app(scope, receive, send)


def unauthorized() -> Problem:
    return Problem(
        401,
        "unauthorized",
        "API key required",
        "Send the operators' key in the X-API-Key header.",
        headers={"WWW-Authenticate": 'ApiKey header="X-API-Key"'},
    )
