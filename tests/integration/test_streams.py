"""The storefront's live stream, `GET /orders/{id}/stream`, from a real uvicorn process over
loopback: events as they commit, each with its sequence number as `id:`, resumed with
`Last-Event-ID` without a gap or a repeat, ended once the order is at rest; woken by PostgreSQL
LISTEN/NOTIFY on one connection per API process, whatever the number of streams."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest

from stack.processes import Stack, free_port
from stack.samples import make_cart
from tests.helpers import COMPLETED_TIMELINE, count, new_key

pytestmark = pytest.mark.slow


@pytest.fixture
def api(processes: Stack, db: psycopg.Connection[Any]) -> str:
    return start_api(processes)


def start_api(processes: Stack) -> str:
    """The API as its own process (one uvicorn worker), heartbeats every second."""
    port = free_port()
    processes.env |= {"STREAM_HEARTBEAT_S": "1", "SECRET_KEY": "stream-test"}
    processes.api(port).wait_ready()
    return f"http://127.0.0.1:{port}"


def start_fulfilment(processes: Stack) -> None:
    processes.worker()
    processes.relay()
    processes.ready()


async def place(api: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=api, timeout=10) as client:
        response = await client.post("/orders", json=make_cart(), headers=new_key())
    assert response.status_code == 202, response.text
    accepted: dict[str, Any] = response.json()
    return accepted


async def messages(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Each message of an event stream: its fields, or {"comment": ...} for a comment line."""
    fields: dict[str, Any] = {}
    async for line in response.aiter_lines():
        if line.startswith(":"):
            yield {"comment": line[1:].strip()}
        elif line:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        elif fields:
            if "data" in fields:  # a block without data (the `retry:` one) is no event
                yield fields
            else:
                assert fields == {"retry": "3000"}
            fields = {}


async def next_event(received: AsyncIterator[dict[str, Any]]) -> dict[str, Any]:
    """The next event, past the keep-alive comments."""
    async for message in received:
        if "comment" not in message:
            return message
    raise AssertionError("the stream ended")


def stream(client: httpx.AsyncClient, order: dict[str, Any], **headers: str) -> Any:
    auth = {"Authorization": f"Bearer {order['access_token']}"}
    return client.stream("GET", order["stream_url"], headers=auth | headers)


async def test_a_stream_resumed_mid_way_gets_exactly_the_later_events_and_ends_at_rest(
    api, processes
):
    order = await place(api)
    async with httpx.AsyncClient(base_url=api, timeout=30) as client:
        async with stream(client, order) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["x-accel-buffering"] == "no"
            assert response.headers["cache-control"] == "no-cache"
            received = messages(response)
            first = await anext(received)
            assert (first["id"], first["event"]) == ("1", "order.placed")
            assert json.loads(first["data"])["seq"] == 1
            # No worker yet: the order does not move, and the stream says only that it lives.
            assert (await asyncio.wait_for(anext(received), 5)) == {"comment": "keep-alive"}

            start_fulfilment(processes)
            second = await asyncio.wait_for(next_event(received), 60)
            assert (second["id"], second["event"]) == ("2", "order.reserved")
        # The connection dropped after event 2; the client comes back with Last-Event-ID.
        async with stream(client, order, **{"Last-Event-ID": "2"}) as response:
            assert response.status_code == 200
            rest = []
            async with asyncio.timeout(90):
                async for message in messages(response):  # ends when the server ends it
                    if "comment" not in message:
                        rest.append(message)
    assert [m["id"] for m in rest] == [str(seq) for seq in range(3, len(COMPLETED_TIMELINE) + 1)]
    assert [m["event"] for m in rest] == COMPLETED_TIMELINE[2:]
    for message in rest:
        assert json.loads(message["data"])["seq"] == int(message["id"])

    # At rest, with everything sent: 204, which tells an EventSource to stop reconnecting.
    async with httpx.AsyncClient(base_url=api, timeout=10) as client:
        last = str(len(COMPLETED_TIMELINE))
        async with stream(client, order, **{"Last-Event-ID": last}) as response:
            assert response.status_code == 204
        # From the start, the whole timeline comes, and the stream ends by itself.
        async with stream(client, order) as response:
            everything = [m async for m in messages(response) if "comment" not in m]
    assert [m["event"] for m in everything] == COMPLETED_TIMELINE


async def test_the_token_may_come_as_a_query_parameter_and_is_never_logged(api, processes):
    order = await place(api)
    start_fulfilment(processes)
    async with httpx.AsyncClient(base_url=api, timeout=60) as client:
        wrong = await client.get(order["stream_url"], params={"access_token": "not-it"})
        assert wrong.status_code == 404
        assert wrong.headers["content-type"] == "application/problem+json"
        assert (await client.get(order["stream_url"])).status_code == 404  # no token at all
        url = order["stream_url"]
        async with client.stream("GET", url, params={"access_token": order["access_token"]}) as r:
            assert r.status_code == 200
            events = [m["event"] async for m in messages(r) if "comment" not in m]
    assert events == COMPLETED_TIMELINE
    api_process = processes.named("api")
    processes.stop()
    log = api_process.log()
    assert f"GET {url}?access_token=[redacted]" in log  # the request was logged...
    assert order["access_token"] not in log  # ...without its token


async def test_open_streams_hold_no_database_connection_and_share_one_listener(processes, db):
    processes.env["DB_POOL_SIZE"] = "25"  # room for a connection per stream: none may be taken
    api = start_api(processes)
    orders = [await place(api) for _ in range(20)]
    async with (
        httpx.AsyncClient(base_url=api, timeout=30) as client,
        contextlib.AsyncExitStack() as open_streams,
    ):
        enter = open_streams.enter_async_context
        responses = [await enter(stream(client, order)) for order in orders]
        assert all(r.status_code == 200 for r in responses)

        def connections(name: str) -> int:
            return count(db, f"pg_stat_activity WHERE application_name = '{name}'")

        pid = processes.named("api").pid
        assert connections(f"orders-api-listen:{pid}") == 1
        assert connections(f"orders-api:{pid}") < len(orders)  # the pool's few, not one per stream
        # Every stream is woken by its own order's events, through that one listener.
        start_fulfilment(processes)
        async with asyncio.timeout(120):
            ends = await asyncio.gather(*(last_event(r) for r in responses))
    assert ends == ["order.completed"] * len(orders)


async def last_event(response: httpx.Response) -> str:
    last = ""
    async for message in messages(response):
        last = message.get("event", last)
    return last


async def test_a_completed_order_that_a_warehouse_ships_streams_on_until_it_shipped(
    api, processes, fake_warehouse
):
    fake_warehouse.configure(failures=2)  # retried with backoff: shipped seconds after completed
    processes.env["WAREHOUSE_URL"] = fake_warehouse.url
    order = await place(api)
    start_fulfilment(processes)
    async with (
        httpx.AsyncClient(base_url=api, timeout=30) as client,
        stream(client, order) as response,
        asyncio.timeout(90),
    ):
        events = [m["event"] async for m in messages(response) if "comment" not in m]
    assert events == [*COMPLETED_TIMELINE, "order.shipped"]
