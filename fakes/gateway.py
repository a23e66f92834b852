"""A small Stripe-like card gateway for tests, the demo and benchmarks.

    python -m fakes.gateway --port 8099 --latency-ms 50 --failure-rate 0.01

It speaks the REST API `orders.payments` expects (HttpAuthorizer, HttpSettler), knows Stripe's test
tokens as the sandbox does, honours Idempotency-Key like Stripe (same key, same answer, one
effect), and can be slowed down or made to fail through /_admin/config.
"""

import argparse
import asyncio
import random
import uuid
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from orders.payments import CAPTURE_FAILS_TOKEN, TEST_CARDS, TEST_DECLINES


class Behaviour(BaseModel):
    latency_ms: int = 0
    failure_rate: float = 0.0  # share of requests answered 500 before any effect
    failure_status: int = 500


class RefundRequest(BaseModel):
    amount: int


class AuthorizeRequest(BaseModel):
    token: str
    amount: int
    currency: str


@dataclass
class Ledger:
    authorizations: dict[str, dict[str, Any]] = field(default_factory=dict)
    replies: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    in_flight: set[str] = field(default_factory=set)
    tokens: dict[str, str] = field(default_factory=dict)  # authorization id -> token
    requests: int = 0
    captures: int = 0
    voids: int = 0
    refunds: int = 0
    refunded: dict[str, int] = field(default_factory=dict)  # authorization id -> amount


@dataclass
class GatewayState:
    behaviour: Behaviour
    ledger: Ledger


def create_app(behaviour: Behaviour | None = None) -> FastAPI:
    app = FastAPI(title="Fake card gateway")
    state = GatewayState(behaviour or Behaviour(), Ledger())

    def ledger() -> Ledger:
        return state.ledger

    async def misbehave() -> JSONResponse | None:
        b = state.behaviour
        ledger().requests += 1
        if b.latency_ms:
            await asyncio.sleep(b.latency_ms / 1000)
        if b.failure_rate and random.random() < b.failure_rate:
            return JSONResponse({"error": {"type": "api_error"}}, b.failure_status)
        return None

    async def once(key: str | None, make: Any) -> JSONResponse:
        """Stripe's idempotency: a finished key replays, a key still running is a 409."""
        book = ledger()
        if key and key in book.replies:
            status, body = book.replies[key]
            return JSONResponse(body, status, headers={"Idempotent-Replayed": "true"})
        if key and key in book.in_flight:
            return JSONResponse({"error": {"type": "idempotency_error"}}, 409)
        if key:
            book.in_flight.add(key)
        try:
            if failure := await misbehave():
                return failure
            status, body = make(book)
            if key:
                book.replies[key] = (status, body)
            return JSONResponse(body, status)
        finally:
            book.in_flight.discard(key or "")

    @app.post("/v1/authorizations")
    async def authorize(
        body: AuthorizeRequest, idempotency_key: str | None = Header(default=None)
    ) -> JSONResponse:
        def make(book: Ledger) -> tuple[int, dict[str, Any]]:
            if body.token in TEST_DECLINES:
                code, message = TEST_DECLINES[body.token]
                return 402, {"error": {"type": "card_error", "code": code, "message": message}}
            if body.token not in TEST_CARDS:
                return 400, {"error": {"code": "invalid_token", "message": "No such token."}}
            brand, last4 = TEST_CARDS[body.token]
            auth: dict[str, Any] = {
                "id": f"auth_{uuid.uuid4().hex}",
                "status": "authorized",
                "amount": body.amount,
                "currency": body.currency,
                "card": {"brand": brand, "last4": last4},
            }
            book.authorizations[auth["id"]] = auth
            book.tokens[auth["id"]] = body.token
            return 201, auth

        return await once(idempotency_key, make)

    # Before the capture/void route, which would take "refunds" for an action.
    @app.post("/v1/authorizations/{auth_id}/refunds")
    async def refund(
        auth_id: str, body: RefundRequest, idempotency_key: str | None = Header(default=None)
    ) -> JSONResponse:
        def make(book: Ledger) -> tuple[int, dict[str, Any]]:
            auth = book.authorizations.get(auth_id)
            if auth is None:
                return 404, {"error": {"code": "resource_missing"}}
            if auth["status"] != "captured":
                return 409, {"error": {"code": f"charge_{auth['status']}"}}
            done = book.refunded.get(auth_id, 0)
            if body.amount <= 0 or done + body.amount > auth["amount"]:
                return 400, {
                    "error": {"code": "amount_too_large", "refundable": auth["amount"] - done}
                }
            book.refunded[auth_id] = done + body.amount
            book.refunds += 1
            return 201, {
                "id": f"re_{uuid.uuid4().hex}",
                "amount": body.amount,
                "status": "succeeded",
            }

        return await once(idempotency_key, make)

    @app.post("/v1/authorizations/{auth_id}/{action}")
    async def settle(
        auth_id: str, action: str, idempotency_key: str | None = Header(default=None)
    ) -> JSONResponse:
        def make(book: Ledger) -> tuple[int, dict[str, Any]]:
            auth = book.authorizations.get(auth_id)
            if auth is None or action not in ("capture", "void"):
                return 404, {"error": {"code": "resource_missing"}}
            if action == "capture" and book.tokens[auth_id] == CAPTURE_FAILS_TOKEN:
                return 402, {"error": {"type": "card_error", "code": "card_declined"}}
            wanted = "captured" if action == "capture" else "voided"
            if auth["status"] not in ("authorized", wanted):
                return 409, {"error": {"code": f"already_{auth['status']}"}}
            if auth["status"] == "authorized":
                auth["status"] = wanted
                if action == "capture":
                    book.captures += 1
                else:
                    book.voids += 1
            return 200, auth

        return await once(idempotency_key, make)

    @app.get("/_admin/stats")
    async def stats() -> dict[str, int]:
        book = ledger()
        return {
            "requests": book.requests,
            "authorizations": len(book.authorizations),
            "captures": book.captures,
            "voids": book.voids,
            "refunds": book.refunds,
            "refunded_amount": sum(book.refunded.values()),
        }

    @app.put("/_admin/config")
    async def configure(behaviour: Behaviour) -> Behaviour:
        state.behaviour = behaviour
        return behaviour

    @app.post("/_admin/reset", status_code=204)
    async def reset() -> None:
        state.behaviour, state.ledger = Behaviour(), Ledger()

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--failure-rate", type=float, default=0.0)
    args = parser.parse_args()
    app = create_app(Behaviour(latency_ms=args.latency_ms, failure_rate=args.failure_rate))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
