"""An open-loop load generator: requests leave on schedule whether or not earlier ones answered,
so queueing shows in the latency instead of hiding in a slower send rate.

    python -m bench.openloop --url http://127.0.0.1:8000/orders --rate 200 --seconds 15

Latency is measured from each request's scheduled time. Prints one JSON line, with the
generator's own CPU use so it can be shown not to be the bottleneck.

HTTP/1.1 keep-alive connections over asyncio protocols (uvloop), parsed by httptools: both come
with uvicorn[standard]. A general-purpose client costs far more: httpx took 4 ms of CPU a request
here at 200/s, most of a core, on the same two cores as the server it measures.
"""

import argparse
import asyncio
import json
import resource
import time
import uuid
from typing import cast
from urllib.parse import urlsplit

import httptools
import uvloop

from orders.stats import percentile
from stack.samples import make_cart

MAX_CONNECTIONS = 256  # further requests wait for one, and the wait counts (latency from schedule)
MAX_IN_FLIGHT = 512  # past this the server is saturated; further requests are shed and counted


class Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time; the answer is the status code."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.answer: asyncio.Future[int] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass of it

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.abort(exc)

    def on_message_complete(self) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_result(self.parser.get_status_code())

    def connection_lost(self, exc: Exception | None) -> None:
        self.abort(exc or ConnectionResetError("closed by the server"))

    def abort(self, exc: BaseException) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(exc)

    def send(self, request: bytes) -> "asyncio.Future[int]":
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.answer


class Pool:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[Connection] = []
        self.opened = 0
        self.freed = asyncio.Condition()

    async def acquire(self) -> Connection:
        while True:
            while self.idle:
                connection = self.idle.pop()
                if not connection.closed:
                    return connection
                self.opened -= 1
            if self.opened < MAX_CONNECTIONS:
                self.opened += 1
                try:
                    loop = asyncio.get_running_loop()
                    _, connection = await loop.create_connection(Connection, self.host, self.port)
                except BaseException:
                    self.opened -= 1
                    raise
                return connection
            async with self.freed:
                await self.freed.wait()

    async def release(self, connection: Connection) -> None:
        if connection.closed:
            self.opened -= 1
        else:
            self.idle.append(connection)
        async with self.freed:
            self.freed.notify()

    def close(self) -> None:
        for connection in self.idle:
            connection.abort(ConnectionAbortedError("done"))


async def run(url: str, rate: float, seconds: float, timeout_s: float) -> dict[str, object]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    body = json.dumps(make_cart()).encode()
    head = (
        f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nIdempotency-Key: "
    ).encode()
    latencies: list[float] = []
    errors: dict[str, int] = {}
    in_flight = 0
    pool = Pool(host, port)

    def error(name: str) -> None:
        errors[name] = errors.get(name, 0) + 1

    async def one(scheduled: float) -> None:
        nonlocal in_flight
        in_flight += 1
        connection: Connection | None = None
        try:
            async with asyncio.timeout(timeout_s):
                connection = await pool.acquire()
                request = head + uuid.uuid4().hex.encode() + b"\r\n\r\n" + body
                status = await connection.send(request)
            if status >= 400:
                error(str(status))
                return
            latencies.append((time.perf_counter() - scheduled) * 1000)
        except (OSError, TimeoutError, httptools.HttpParserError) as exc:
            if connection is not None:
                connection.abort(exc)  # the answer may still come: this connection is spent
            error(type(exc).__name__)
        finally:
            in_flight -= 1
            if connection is not None:
                await pool.release(connection)

    total = int(rate * seconds)
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter() + 0.05
    tasks = []
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if in_flight >= MAX_IN_FLIGHT:
            error("shed")
            continue
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    pool.close()
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    ms = sorted(latencies)
    return {
        "offered_rate": rate,
        "achieved_rate": round(len(ms) / elapsed, 1),
        "sent": total,
        "ok": len(ms),
        "errors": errors,
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "max_ms": ms[-1] if ms else None,
        "generator_cpu_pct": round(100 * cpu / elapsed, 1),
        "generator_cpu_ms_per_request": round(1000 * cpu / max(1, total), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--timeout", type=float, default=5)
    args = parser.parse_args()
    result = uvloop.run(run(args.url, args.rate, args.seconds, args.timeout))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
