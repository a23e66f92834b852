"""Errors as RFC 9457 problem details (`application/problem+json`), including the domain's own
exceptions, so routes call the domain and let its refusals through."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from orders.idempotency import KeyInUse, KeyReused
from orders.payments import GatewayUnavailable, InvalidPaymentToken
from orders.pricing import PricingError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """An error the client can act on; `type` is a stable identifier, `title` its short name."""

    def __init__(
        self,
        status: int,
        type_: str,
        title: str,
        detail: str,
        *,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.type = type_
        self.title = title
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"/problems/{self.type}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.errors is not None:
            body["errors"] = self.errors
        return body | self.extra


def invalid(field: str, message: str) -> Problem:
    """422 naming the offending field, e.g. `lines[2].sku`."""
    return Problem(
        422,
        "validation-error",
        "Your request is not valid",
        f"{field}: {message}",
        errors=[{"field": field, "message": message}],
    )


def not_found(what: str) -> Problem:
    return Problem(404, "not-found", "Not found", f"No {what} here.")


def service_unavailable(detail: str, retry_after_s: int) -> Problem:
    return Problem(
        503,
        "service-unavailable",
        "Service temporarily unavailable",
        detail,
        headers={"Retry-After": str(retry_after_s)},
    )


def problem_response(problem: Problem, instance: str | None = None) -> JSONResponse:
    body = problem.body()
    if instance:
        body["instance"] = instance
    return JSONResponse(body, problem.status, headers=problem.headers, media_type=PROBLEM_JSON)


def field_path(loc: tuple[int | str, ...]) -> str:
    """('body', 'lines', 0, 'sku') -> 'lines[0].sku'."""
    path = ""
    for part in loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


def validation_problem(exc: RequestValidationError) -> Problem:
    errors = [{"field": field_path(tuple(e["loc"])), "message": e["msg"]} for e in exc.errors()]
    if any(e["type"] == "json_invalid" for e in exc.errors()):
        return Problem(400, "malformed-json", "Malformed JSON", "The body is not valid JSON.")
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return Problem(422, "validation-error", "Your request is not valid", detail, errors=errors)


def domain_problem(exc: Exception, retry_after_s: int) -> Problem:
    """The domain's refusals, as the client should read them."""
    match exc:
        case PricingError():
            return invalid(exc.field, exc.message)
        case InvalidPaymentToken():
            return invalid("payment_token", str(exc))
        case GatewayUnavailable():
            return service_unavailable(
                "The payment gateway did not answer; nothing was charged. Retry with the same key.",
                retry_after_s,
            )
        case KeyReused():
            return Problem(
                422,
                "idempotency-key-reused",
                "Idempotency-Key reused with another request",
                "This Idempotency-Key was first used with a different body; use a new key.",
            )
        case KeyInUse():
            return Problem(
                409,
                "idempotency-key-in-use",
                "A request with this Idempotency-Key is in progress",
                "The first request with this key has not finished; retry shortly.",
                headers={"Retry-After": "1"},
            )
    raise TypeError(f"no problem for {exc!r}")


DOMAIN_ERRORS = (PricingError, InvalidPaymentToken, GatewayUnavailable, KeyReused, KeyInUse)


def install_problem_handlers(app: FastAPI, retry_after_s: int) -> None:
    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(exc, request.url.path)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return problem_response(validation_problem(exc), request.url.path)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
        problem = Problem(exc.status_code, "http-error", title, str(exc.detail))
        problem.headers = dict(exc.headers or {})
        return problem_response(problem, request.url.path)

    async def on_database_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable: %s", exc)
        problem = service_unavailable(
            "The order database is unreachable; retry later.", retry_after_s
        )
        return problem_response(problem, request.url.path)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        """A bug, or a fault nobody planned for: still a problem document, never a stack."""
        detail = "Something went wrong on our side; nothing was charged that is kept. Retry later."
        problem = Problem(500, "internal-error", "Internal error", detail)
        return problem_response(problem, request.url.path)

    async def on_domain(request: Request, exc: Exception) -> JSONResponse:
        return problem_response(domain_problem(exc, retry_after_s), request.url.path)

    app.add_exception_handler(Exception, on_unexpected)  # Starlette logs it, then re-raises
    app.add_exception_handler(Problem, on_problem)
    for error in DOMAIN_ERRORS:
        app.add_exception_handler(error, on_domain)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    # Refused, lost or timed-out connections, statement timeouts and an exhausted pool.
    for outage in (OperationalError, InterfaceError, PoolTimeoutError):
        app.add_exception_handler(outage, on_database_down)
