"""The OpenAPI document, true to every response: each error is `application/problem+json` with
one Problem schema, each operation lists every status it can answer, and the operators' key is a
security scheme. FastAPI documents success bodies from the response models; the errors, which
the gates, the problem handlers and the routes produce, are added here."""

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details.",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "A stable identifier: /problems/<name>"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "For invalid input: which field, and what is wrong with it.",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
        "decline_code": {"type": "string", "description": "For a declined card"},
    },
    "additionalProperties": True,
}
WHY = {
    "400": "Malformed JSON, or a missing or repeated header",
    "401": "The operators' key is missing or wrong",
    "404": "Nothing here with this id (or this token)",
    "413": "Body too large",
    "415": "Body not in the media type this operation takes",
    "422": "Invalid input; the problem names the field",
    "503": "The database, the payment gateway or the request deadline: nothing was written",
}


def problem_documenter(app: FastAPI) -> Callable[[], dict[str, Any]]:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            for item in schema["paths"].values():
                for method, operation in item.items():
                    _document_errors(method, operation)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                components.pop(name, None)
            components["Problem"] = PROBLEM_SCHEMA
            app.openapi_schema = schema
        return app.openapi_schema

    return openapi


def _document_errors(method: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    statuses = {"503"}
    if operation.get("parameters") or "requestBody" in operation:
        statuses.add("422")
    if any(p["in"] == "path" for p in operation.get("parameters", [])):
        statuses.add("404")
    if "requestBody" in operation:
        statuses |= {"400", "413", "415"}
    if operation.get("security"):
        statuses.add("401")
    for status in statuses:
        responses.setdefault(status, {"description": WHY[status]})
    for status, response in responses.items():
        if int(status) >= 400:
            response["content"] = {"application/problem+json": {"schema": PROBLEM_REF}}
