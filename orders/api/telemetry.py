"""Analytics pings: nice to have, never worth a slower checkout or a retry."""

from typing import Any

import aiohttp

TIMEOUT = aiohttp.ClientTimeout(total=1.0)  # the session's (orders.api.app): a ping waits no longer


async def ping(client: aiohttp.ClientSession, url: str, event: str, data: dict[str, Any]) -> None:
    async with client.post(url, json={"event": event, **data}) as response:
        response.raise_for_status()
