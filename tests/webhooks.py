"""What the webhook tests share: registering an endpoint, verifying what a receiver got."""

import base64
from typing import Any

from standardwebhooks.webhooks import Webhook

from stack.processes import Stack
from tests.helpers import COMPLETED_TIMELINE, OPS

ALL_EVENTS = COMPLETED_TIMELINE


def start_all_in_one(processes: Stack) -> None:
    """One worker on every queue, and a relay."""
    processes.worker()
    processes.relay()
    processes.ready()


async def register(client, url: str, types: list[str] | None = None) -> dict[str, Any]:
    response = await client.post(
        "/ops/webhook-endpoints", json={"url": url, "event_types": types or ALL_EVENTS}, headers=OPS
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def verified(secret: str, message: dict[str, Any]) -> dict[str, Any]:
    payload: dict[str, Any] = Webhook(secret).verify(
        base64.b64decode(message["body_b64"]), message["headers"]
    )
    return payload
