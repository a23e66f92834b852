"""A webhook receiver on loopback that records what it gets and answers as scripted.

    python -m fakes.receiver --port 8097

POST /{path}: recorded (headers and raw body), then answered with the next status of that path's
script (then its default). PUT /_admin/script/{path} sets the script; GET /_admin/received/{path}
returns what came in, GET /_admin/most-at-once/{path} the most requests it had open at once.
"""

import argparse
import asyncio
import base64
import collections
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel


class Script(BaseModel):
    statuses: list[int] = []  # answered in turn, then `default`
    default: int = 200
    retry_after: str | None = None  # sent with 429 and 503 answers
    delay_ms: int = 0


@dataclass
class Inbox:
    scripts: dict[str, Script] = field(default_factory=dict)
    received: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    open: collections.Counter[str] = field(default_factory=collections.Counter)
    most_open: collections.Counter[str] = field(default_factory=collections.Counter)


def create_app() -> FastAPI:
    app = FastAPI(title="Fake webhook receiver")
    inbox = Inbox()

    @app.put("/_admin/script/{path}")
    async def set_script(path: str, script: Script) -> Script:
        inbox.scripts[path] = script
        return script

    @app.get("/_admin/received/{path}")
    async def received(path: str) -> list[dict[str, Any]]:
        return inbox.received.get(path, [])

    @app.get("/_admin/most-at-once/{path}")
    async def most_at_once(path: str) -> int:
        return inbox.most_open[path]

    @app.post("/_admin/reset", status_code=204)
    async def reset() -> None:
        inbox.scripts.clear()
        inbox.received.clear()
        inbox.most_open.clear()

    @app.post("/{path}")
    async def receive(path: str, request: Request) -> JSONResponse:
        body = await request.body()
        inbox.received.setdefault(path, []).append(
            {"headers": dict(request.headers), "body_b64": base64.b64encode(body).decode()}
        )
        script = inbox.scripts.setdefault(path, Script())
        inbox.open[path] += 1
        inbox.most_open[path] = max(inbox.most_open[path], inbox.open[path])
        try:
            if script.delay_ms:
                await asyncio.sleep(script.delay_ms / 1000)
        finally:
            inbox.open[path] -= 1
        status = script.statuses.pop(0) if script.statuses else script.default
        headers = (
            {"retry-after": script.retry_after}
            if script.retry_after and status in (429, 503)
            else {}
        )
        return JSONResponse({"status": status}, status, headers=headers)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8097)
    args = parser.parse_args()
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
