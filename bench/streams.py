"""Many open order streams against one API process, for `make bench`: what each costs the API in
memory, and whether checkouts notice them.

    python -m bench.streams --api http://127.0.0.1:8000 --orders FILE --hold 60

holds one `GET /orders/{id}/stream` per order of FILE (JSON: [{"stream_url", "access_token"}])
open, each over its own connection (opened 50 at a time, as clients would arrive), reading what comes (the first event, then heartbeats); it
prints `open N` once every stream has answered 200, and exits after `--hold` seconds. A plain
asyncio client: a few KB per connection, so 1,000 of them cost the load generator little.
"""

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import uvloop

OPENING = 50  # streams being opened at once


async def hold(host: str, port: int, order: dict[str, Any], opened: asyncio.Queue[bool]) -> int:
    """Open one stream; True into `opened` once it answered 200; returns the bytes read."""
    reader, writer = await asyncio.open_connection(host, port)
    request = (
        f"GET {order['stream_url']} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {order['access_token']}\r\nAccept: text/event-stream\r\n\r\n"
    )
    writer.write(request.encode())
    status = await reader.readline()
    await opened.put(b" 200 " in status)
    read = len(status)
    try:
        while chunk := await reader.read(4096):
            read += len(chunk)
    finally:
        writer.close()
    return read


async def run(api: str, orders: list[dict[str, Any]], hold_s: float) -> None:
    parts = urlsplit(api)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    opened: asyncio.Queue[bool] = asyncio.Queue()
    tasks, answered = [], []
    for i, order in enumerate(orders):  # OPENING at a time, as clients arrive, not all at once
        tasks.append(asyncio.create_task(hold(host, port, order, opened)))
        if i >= OPENING:
            answered.append(await opened.get())
    answered += [await opened.get() for _ in range(len(orders) - len(answered))]
    print(f"open {sum(answered)}", flush=True)
    await asyncio.sleep(hold_s)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--api", required=True)
    parser.add_argument("--orders", type=Path, required=True)
    parser.add_argument("--hold", type=float, default=60)
    args = parser.parse_args()
    orders = json.loads(args.orders.read_text())
    uvloop.run(run(args.api, orders, args.hold))
    print("done", file=sys.stderr)


if __name__ == "__main__":
    main()
