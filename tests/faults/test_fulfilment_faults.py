"""Faults with real processes: a killed worker, a broker outage, a relay that dies before marking
its rows, a poison order. No order is lost and no effect happens twice."""

import asyncio
import signal

import pytest
from kombu.connection import Connection

from orders.messages import Queue
from tests.helpers import (
    COMPLETED_TIMELINE,
    count,
    event_types,
    eventually,
    invoice_numbers,
    place,
    settle,
)
from tests.proxy import TcpProxy

pytestmark = [pytest.mark.fault, pytest.mark.slow]


def in_render(db) -> bool:
    """An invoice is numbered but its PDF is not stored yet: render_invoice is running."""
    return count(db, "invoice WHERE pdf IS NULL") > 0


async def test_sigkill_during_render_invoice_loses_nothing_and_repeats_nothing(
    http_gateway_client, db, fake_gateway, processes
):
    worker = processes.worker()
    processes.relay()
    processes.ready()
    ids = [str((await place(http_gateway_client))["id"]) for _ in range(6)]
    await eventually(lambda: in_render(db), timeout_s=60, what="a render in progress")
    worker.kill(signal.SIGKILL)  # the main process and its pool children, mid-render
    assert count(db, "invoice WHERE pdf IS NULL") >= 1

    processes.worker("worker-restarted").wait_ready()
    statuses = await settle(db, ids, timeout_s=120)

    assert set(statuses.values()) == {"completed"}
    assert count(db, "invoice") == 6
    assert invoice_numbers(db) == [1, 2, 3, 4, 5, 6]  # no gap, no number twice
    assert fake_gateway.stats()["captures"] == 6
    for order_id in ids:
        assert event_types(db, order_id) == COMPLETED_TIMELINE


async def test_orders_placed_while_the_broker_is_down_complete_when_it_returns(
    http_gateway_client, db, fake_gateway, processes, broker_url
):
    proxy = TcpProxy(("127.0.0.1", 5672))
    processes.env["BROKER_URL"] = broker_url.replace(":5672/", f":{proxy.port}/")
    processes.worker()
    relay = processes.relay()
    processes.ready()
    try:
        first = await place(http_gateway_client)
        await settle(db, [first["id"]])

        proxy.cut()
        during = [await place(http_gateway_client) for _ in range(8)]  # every one gets 202
        await asyncio.sleep(2)
        assert count(db, "outbox WHERE published_at IS NULL") == 8  # the outbox holds the work
        await eventually(
            lambda: "broker unreachable" in relay.log(), what="the relay to see the outage"
        )

        proxy.restore()
        statuses = await settle(db, [o["id"] for o in during], timeout_s=120)
    finally:
        processes.stop()
        proxy.close()

    assert set(statuses.values()) == {"completed"}
    assert relay.log().count("broker unreachable") == 1  # logged once per outage
    assert "broker back" in relay.log()
    assert count(db, "outbox WHERE published_at IS NULL") == 0
    assert invoice_numbers(db) == list(range(1, 10))
    assert fake_gateway.stats()["captures"] == 9


async def test_a_relay_that_dies_between_publishing_and_marking_causes_no_second_effect(
    http_gateway_client, db, fake_gateway, processes
):
    """A relay killed after the broker confirmed but before its commit leaves the rows unmarked:
    the next relay publishes them again. Reproduce exactly that state, then count effects."""
    worker = processes.worker()
    relay = processes.relay()
    processes.ready()
    ids = [str((await place(http_gateway_client))["id"]) for _ in range(5)]
    await settle(db, ids)
    relay.kill(signal.SIGKILL)
    db.execute("UPDATE outbox SET published_at = NULL")  # as if the marks never committed

    processes.relay("relay-again").wait_ready()
    await eventually(
        lambda: count(db, "outbox WHERE published_at IS NULL") == 0,
        what="the second publication",
    )
    # The duplicate chains run: each of their 2 tasks (reserve and capture, render and notify)
    # finds its work done ('done').
    await eventually(lambda: worker.log().count("'done'") == 5 * 2, what="10 tasks found done")
    sentinel = await place(http_gateway_client)  # one order more, behind the duplicates
    await settle(db, [sentinel["id"]])
    processes.stop()

    assert worker.log().count("'done'") == 5 * 2  # and nothing else was repeated
    assert worker.log().count("succeeded") == 6 * 2 + 5 * 2
    assert fake_gateway.stats()["captures"] == 6
    assert invoice_numbers(db) == [1, 2, 3, 4, 5, 6]
    assert count(db, "stock_reservation") == 12  # two lines per order, reserved once
    for order_id in ids:
        assert event_types(db, order_id) == COMPLETED_TIMELINE


async def test_a_poison_order_fails_and_stops_without_blocking_the_others(
    http_gateway_client, db, fake_gateway, processes, broker_url
):
    processes.worker()
    processes.relay()
    processes.ready()
    poison = await place(http_gateway_client, lines=[{"sku": "POISON-1", "quantity": 1}])
    others = [await place(http_gateway_client) for _ in range(4)]
    statuses = await settle(db, [poison["id"]] + [o["id"] for o in others], timeout_s=120)
    await asyncio.sleep(2)  # nothing should come back for the poison order
    with Connection(broker_url) as connection:
        _, waiting, _ = connection.default_channel.queue_declare(Queue.INVOICES, passive=True)

    assert statuses.pop(poison["id"]) == "failed"
    assert set(statuses.values()) == {"completed"}
    failed = db.execute(
        'SELECT failed_step, failure_reason FROM "order" WHERE id = %s', (poison["id"],)
    ).fetchone()
    assert failed == (
        "render_invoice",
        "render_invoice crashed its worker 3 times (poison message)",
    )
    assert event_types(db, poison["id"])[-1] == "order.failed"
    assert waiting == 0
