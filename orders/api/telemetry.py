"""Analytics pings: nice to have, never worth a slower checkout or a retry."""

import logging
from typing import Any

import httpx

log = logging.getLogger(__name__)


async def ping(client: httpx.AsyncClient, url: str, event: str, data: dict[str, Any]) -> None:
    response = await client.post(url, json={"event": event, **data}, timeout=1.0)
    response.raise_for_status()
