"""A warehouse API on loopback that takes stock reservations and ships them, for tests and the
demo.

    python -m fakes.warehouse --port 8098

POST /reservations {"order_id", "lines"} with an Idempotency-Key: the same key is one reservation
however often it is sent. POST /shipments {"order_id"} with an Idempotency-Key ships what the
order reserved and confirms it (201, then 200 for the same key); 409 if nothing is reserved for
that order yet. `failures` in /_admin/config answers that many requests with 503 first.
"""

import argparse
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import uvicorn
from fastapi import FastAPI, Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel


class Behaviour(BaseModel):
    failures: int = 0  # the next N requests get 503


@dataclass
class Stockroom:
    behaviour: Behaviour = field(default_factory=Behaviour)
    reservations: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> body
    shipments: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> confirmation
    requests: int = 0

    def busy(self) -> bool:
        self.requests += 1
        if self.behaviour.failures > 0:
            self.behaviour.failures -= 1
            return True
        return False


def create_app() -> FastAPI:
    app = FastAPI(title="Fake warehouse")
    room = Stockroom()

    @app.post("/reservations")
    async def reserve(
        body: dict[str, Any], idempotency_key: str = Header(alias="Idempotency-Key")
    ) -> JSONResponse:
        if room.busy():
            return JSONResponse({"error": "busy"}, 503)
        created = idempotency_key not in room.reservations
        room.reservations.setdefault(idempotency_key, body)
        return JSONResponse(room.reservations[idempotency_key], 201 if created else 200)

    @app.post("/shipments")
    async def ship(
        body: dict[str, Any], idempotency_key: str = Header(alias="Idempotency-Key")
    ) -> JSONResponse:
        if room.busy():
            return JSONResponse({"error": "busy"}, 503)
        if idempotency_key in room.shipments:
            return JSONResponse(room.shipments[idempotency_key], 200)
        reserved = [r for r in room.reservations.values() if r["order_id"] == body["order_id"]]
        if not reserved:
            return JSONResponse({"error": "nothing reserved for this order"}, 409)
        shipped_at = datetime.now(UTC).isoformat()
        confirmation = {"order_id": body["order_id"], "lines": reserved[0]["lines"]}
        room.shipments[idempotency_key] = confirmation | {"shipped_at": shipped_at}
        return JSONResponse(room.shipments[idempotency_key], 201)

    @app.get("/_admin/stats")
    async def stats() -> dict[str, Any]:
        return {
            "requests": room.requests,
            "reservations": list(room.reservations.values()),
            "shipments": list(room.shipments.values()),
        }

    @app.put("/_admin/config")
    async def configure(behaviour: Behaviour) -> Behaviour:
        room.behaviour = behaviour
        return behaviour

    @app.post("/_admin/reset", status_code=204)
    async def reset() -> None:
        room.behaviour, room.reservations, room.shipments, room.requests = Behaviour(), {}, {}, 0

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8098)
    args = parser.parse_args()
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
