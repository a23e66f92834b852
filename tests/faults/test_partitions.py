"""Partitions and outages: a peer that stops answering without closing anything (a TCP proxy
freezes the connections open at that moment; new ones get through), or one that drops every
connection and refuses new ones for a while (the proxy cut). The broker under the relay and the
worker, the database under the API and under the relay: each side notices, moves on, and every
order completes."""

import asyncio
import time

import pytest

from stack.samples import make_cart
from tests.helpers import PROBLEM, invoice_numbers, new_key, place, running_app, settle
from tests.proxy import TcpProxy

pytestmark = [pytest.mark.fault, pytest.mark.slow]


async def test_a_broker_gone_silent_is_left_for_new_connections_and_every_order_completes(
    http_gateway_client, db, fake_gateway, processes, broker_url
):
    proxy = TcpProxy(("127.0.0.1", 5672))
    processes.env |= {
        "BROKER_URL": broker_url.replace(":5672/", f":{proxy.port}/"),
        "BROKER_HEARTBEAT_S": "2",
        "BROKER_CONFIRM_TIMEOUT_S": "2",
    }
    worker, relay = processes.worker(), processes.relay()
    processes.ready()
    try:
        first = await place(http_gateway_client)
        await settle(db, [first["id"]])  # every connection is open and in use
        proxy.freeze()  # and from now on silent
        frozen = time.monotonic()
        during = [await place(http_gateway_client) for _ in range(5)]
        statuses = await settle(db, [o["id"] for o in during], timeout_s=120)
        print(f"partition: 5 orders completed {time.monotonic() - frozen:.1f} s after the freeze")
    finally:
        proxy.thaw()
        processes.stop()
        proxy.close()

    assert set(statuses.values()) == {"completed"}
    assert fake_gateway.stats()["captures"] == 6  # nothing twice
    assert invoice_numbers(db) == [1, 2, 3, 4, 5, 6]
    assert "again on a new connection" in relay.log()  # its confirm never came
    assert "Connection to broker lost" in worker.log()  # its heartbeats stopped


async def test_an_api_whose_database_goes_silent_answers_503_at_its_deadline_and_recovers(
    db, test_settings, database_url
):
    proxy = TcpProxy(("127.0.0.1", 5432))
    settings = test_settings(
        database_url=database_url.replace(":5432/", f":{proxy.port}/"),
        request_deadline_s=1.0,
        db_pool_size=2,
        db_max_overflow=0,
    )
    try:
        async with running_app(settings) as client:
            assert (await client.get("/products")).status_code == 200  # a pooled connection
            proxy.freeze()
            started = time.monotonic()
            silent = await client.get("/products")
            waited = time.monotonic() - started
            assert silent.status_code == 503
            assert silent.headers["content-type"] == PROBLEM
            assert silent.headers["retry-after"] == "5"
            # Without the deadline it would wait as long as the partition lasts (and psycopg
            # alone, once cancelled, waits 5 s more for the server to confirm).
            assert waited < 4

            # The frozen connection is given up in the background; new ones get through.
            deadline = time.monotonic() + 30
            while (await client.get("/products")).status_code != 200:
                assert time.monotonic() < deadline, "the API did not recover"
                await asyncio.sleep(0.5)
            checkout = await client.post("/orders", json=make_cart(), headers=new_key())
            assert checkout.status_code == 202
    finally:
        proxy.close()


async def test_a_relay_whose_database_goes_away_waits_and_relays_what_was_written_meanwhile(
    http_gateway_client, db, fake_gateway, processes, database_url
):
    proxy = TcpProxy(("127.0.0.1", 5432))
    processes.env["DATABASE_URL"] = database_url.replace(":5432/", f":{proxy.port}/")
    relay = processes.relay()
    processes.env["DATABASE_URL"] = database_url
    processes.worker()
    processes.ready()
    try:
        first = await place(http_gateway_client)
        await settle(db, [first["id"]])  # the relay's connections are open and pooled
        proxy.cut()  # as a database restart looks from the relay: every connection dropped
        during = [await place(http_gateway_client) for _ in range(3)]
        await asyncio.sleep(3)
        assert relay.running()  # waits the outage out: no supervisor needed to restart it
        proxy.restore()
        statuses = await settle(db, [o["id"] for o in during], timeout_s=60)
    finally:
        processes.stop()
        proxy.close()

    assert set(statuses.values()) == {"completed"}
    assert fake_gateway.stats()["captures"] == 4  # nothing twice
    assert invoice_numbers(db) == [1, 2, 3, 4]
    assert "database unreachable, outbox rows wait" in relay.log()
