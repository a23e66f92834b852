"""Webhook deliveries while the workers' database is unreachable: nothing is lost, nothing is
sent twice."""

import asyncio
from collections.abc import Iterator

import pytest

from orders.messages import Queue
from stack.processes import Stack
from tests.helpers import OPS, count, eventually, place
from tests.proxy import TcpProxy

pytestmark = [pytest.mark.fault, pytest.mark.slow]


@pytest.fixture
def worker_db(processes: Stack, database_url: str) -> Iterator[TcpProxy]:
    """A webhooks worker that reaches PostgreSQL through a proxy the test can cut, and a relay
    that reaches it directly."""
    proxy = TcpProxy(("127.0.0.1", 5432))
    processes.env["DATABASE_URL"] = database_url.replace(":5432/", f":{proxy.port}/")
    processes.worker("webhook-worker", queues=Queue.WEBHOOKS)
    processes.env["DATABASE_URL"] = database_url
    processes.relay()
    processes.ready()
    yield proxy
    processes.stop()
    proxy.close()


async def subscribe(client, url: str) -> None:
    body = {"url": url, "event_types": ["order.placed"]}
    response = await client.post("/ops/webhook-endpoints", json=body, headers=OPS)
    assert response.status_code == 201, response.text


async def test_an_attempt_sent_while_the_database_fails_is_recorded_after_not_sent_again(
    http_gateway_client, db, receiver, processes, worker_db
):
    await subscribe(http_gateway_client, receiver.script("slow", delay_ms=1_500))
    await place(http_gateway_client)
    await eventually(lambda: len(receiver.received("slow")) == 1, what="the request to go out")
    worker_db.cut()  # the receiver answers while the worker cannot reach its database
    await asyncio.sleep(3)
    worker_db.restore()

    await eventually(
        lambda: count(db, "webhook_delivery WHERE status = 'delivered'") == 1,
        what="the attempt to be recorded",
    )
    attempts = db.execute("SELECT response_status FROM webhook_attempt").fetchall()
    assert attempts == [(200,)]
    assert len(receiver.received("slow")) == 1  # sent once
    assert "not recorded yet" in processes.named("webhook-worker").log()


async def test_a_delivery_that_cannot_start_for_the_database_is_retried(
    http_gateway_client, db, receiver, processes, worker_db
):
    await subscribe(http_gateway_client, receiver.script("later"))
    worker_db.cut()
    await place(http_gateway_client)
    await eventually(lambda: "Retry in" in processes.named("webhook-worker").log(), what="a retry")
    assert receiver.received("later") == []
    worker_db.restore()

    await eventually(
        lambda: count(db, "webhook_delivery WHERE status = 'delivered'") == 1,
        what="the delivery",
    )
    assert len(receiver.received("later")) == 1
