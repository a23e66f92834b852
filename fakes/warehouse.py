"""A warehouse API on loopback that takes stock reservations, for tests and the demo.

    python -m fakes.warehouse --port 8098

POST /reservations with an Idempotency-Key: the same key is one reservation however often it is
sent. `failures` in /_admin/config answers that many requests with 503 first.
"""

import argparse
from dataclasses import dataclass, field
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
    reservations: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: int = 0


def create_app() -> FastAPI:
    app = FastAPI(title="Fake warehouse")
    room = Stockroom()

    @app.post("/reservations")
    async def reserve(
        body: dict[str, Any], idempotency_key: str = Header(alias="Idempotency-Key")
    ) -> JSONResponse:
        room.requests += 1
        if room.behaviour.failures > 0:
            room.behaviour.failures -= 1
            return JSONResponse({"error": "busy"}, 503)
        created = idempotency_key not in room.reservations
        room.reservations.setdefault(idempotency_key, body)
        return JSONResponse(room.reservations[idempotency_key], 201 if created else 200)

    @app.get("/_admin/stats")
    async def stats() -> dict[str, Any]:
        return {"requests": room.requests, "reservations": list(room.reservations.values())}

    @app.put("/_admin/config")
    async def configure(behaviour: Behaviour) -> Behaviour:
        room.behaviour = behaviour
        return behaviour

    @app.post("/_admin/reset", status_code=204)
    async def reset() -> None:
        room.behaviour, room.reservations, room.requests = Behaviour(), {}, 0

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8098)
    args = parser.parse_args()
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
