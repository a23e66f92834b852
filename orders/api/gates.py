"""What a request must be before anything parses it: the operators' key or session on their
paths (401 first, whatever the body), and a body of the right size (413), media type (415) and, for JSON,
shape (400 naming what is wrong: malformed, nested too deep, a number too long)."""

import contextlib
import hmac
import json
import re
from http.cookies import CookieError, SimpleCookie
from urllib.parse import urlencode

from starlette.datastructures import Headers
from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orders.api.ops_session import COOKIE, Sessions, csrf_matches
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
    type (JSON; multipart on the upload paths, urlencoded on the sign-in forms') and that its
    JSON parses. Bodies of `streamed` paths (the stock file upload) go through untouched."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        uploads: re.Pattern[str],
        upload_max_bytes: int,
        forms: re.Pattern[str],
        streamed: re.Pattern[str],
    ) -> None:
        self.app = app
        self.streamed = streamed  # bodies the route reads as they arrive, and checks itself
        self.max_bytes = max_bytes
        self.uploads, self.upload_max_bytes = uploads, upload_max_bytes
        self.forms = forms  # HTML forms: urlencoded

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] in BODYLESS
            or self.streamed.match(scope["path"])
        ):
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
            form = bool(self.forms.match(scope["path"]))
            expected = (
                b"multipart/form-data"
                if upload
                else b"application/x-www-form-urlencoded"
                if form
                else b"application/json"
            )
            if media_type != expected:
                problem = Problem(
                    415,
                    "unsupported-media-type",
                    "Unsupported media type",
                    f"Send the body as {expected.decode()}.",
                )
                await self._refuse(scope, receive, send, problem)
                return
            if not (upload or form) and (problem_ := json_problem(body)) is not None:
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


class OpsGate:
    """The operators' paths answer before anything else is looked at: with the key
    (`X-API-Key`) or a signed-in session's cookie a request goes on, which of the two noted in
    `scope["state"]["ops"]`; a cookie-authenticated request that changes something must carry
    its session's CSRF token (403 without). Without either: the pages send a browser to the
    sign-in form, everything else is 401. The sign-in form and the pages' own files are open."""

    def __init__(
        self,
        app: ASGIApp,
        key: str,
        paths: re.Pattern[str],
        sessions: Sessions,
        open_paths: re.Pattern[str],
        pages: re.Pattern[str],
    ) -> None:
        self.app, self.key, self.paths, self.sessions = app, key.encode(), paths, sessions
        self.open_paths, self.pages = open_paths, pages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not self.paths.match(path) or self.open_paths.match(path):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if hmac.compare_digest(headers.get("x-api-key", "").encode("latin-1"), self.key):
            scope.setdefault("state", {})["ops"] = "key"
            await self.app(scope, receive, send)
            return
        session = self.sessions.read(cookie_value(headers, COOKIE))
        if session is None:
            if scope["method"] == "GET" and self.pages.match(path):
                query = scope.get("query_string", b"").decode("latin-1")
                here = path + (f"?{query}" if query else "")
                to = "/ops/login?" + urlencode({"next": here})
                await RedirectResponse(to, status_code=303)(scope, receive, send)
                return
            await problem_response(unauthorized(), path)(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["ops"], state["ops_session"] = "session", session
        changes = scope["method"] not in ("GET", "HEAD", "OPTIONS")
        checked_here = changes and path != "/ops/logout"  # logout's token comes in its form
        if checked_here and not csrf_matches(session, headers.get("x-csrf-token")):
            await problem_response(csrf_refused(), path)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def cookie_value(headers: Headers, name: str) -> str | None:
    jar = SimpleCookie()
    with contextlib.suppress(CookieError):
        jar.load(headers.get("cookie", ""))
    morsel = jar.get(name)
    return morsel.value if morsel is not None else None


def csrf_refused() -> Problem:
    return Problem(
        403,
        "csrf-token-missing",
        "CSRF token missing or wrong",
        "A signed-in change must send its page's token in the X-CSRF-Token header.",
    )


def unauthorized() -> Problem:
    return Problem(
        401,
        "unauthorized",
        "API key required",
        "Send the operators' key in the X-API-Key header.",
        headers={"WWW-Authenticate": 'ApiKey header="X-API-Key"'},
    )
