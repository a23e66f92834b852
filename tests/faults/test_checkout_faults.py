"""Checkout failing after the card was authorized: no authorization is left without an order or
a void, whatever failed (the database refusing the order, or going away mid-request)."""

import asyncio

import pytest

from stack.samples import make_cart
from tests.helpers import PROBLEM, REFUSED, count, eventually, running_app
from tests.proxy import TcpProxy

pytestmark = [pytest.mark.fault]


def balanced(gateway, db) -> bool:
    stats = gateway.stats()
    return bool(stats["authorizations"] == count(db, '"order"') + stats["voids"])


def voided(gateway, times: int):
    return lambda: gateway.stats()["voids"] == times


async def test_an_order_the_database_refuses_has_its_authorization_voided(
    http_gateway_client, db, fake_gateway, processes, order_insert_fails
):
    processes.worker()
    processes.relay()
    processes.ready()
    cart = make_cart(customer={"email": "ada@example.com", "name": REFUSED})
    key = {"Idempotency-Key": "refused-once"}
    for attempt in (1, 2):  # a retry with the key starts afresh, and is voided too
        response = await http_gateway_client.post("/orders", json=cart, headers=key)
        assert response.status_code == 500
        assert response.headers["content-type"] == PROBLEM
        await eventually(voided(fake_gateway, attempt), what="the void")
    assert fake_gateway.stats()["authorizations"] == 2
    assert count(db, '"order"') == 0
    assert count(db, "idempotency_key") == 0  # nothing to replay: the next try is new

    db.execute('DROP TRIGGER refuse_order ON "order"')
    response = await http_gateway_client.post("/orders", json=cart, headers=key)
    assert response.status_code == 202
    stats = fake_gateway.stats()
    assert (stats["authorizations"], stats["voids"], count(db, '"order"')) == (3, 2, 1)
    assert balanced(fake_gateway, db)


async def test_a_database_lost_after_authorizing_is_met_by_the_retry_that_finds_the_claim(
    db, test_settings, fake_gateway, database_url
):
    proxy = TcpProxy(("127.0.0.1", 5432))
    settings = test_settings(
        database_url=database_url.replace(":5432/", f":{proxy.port}/"),
        payment_gateway="http",
        payment_gateway_url=fake_gateway.url,
        idempotency_lock_timeout_s=1,
        db_connect_timeout_s=1,
    )
    fake_gateway.configure(latency_ms=500)
    key = {"Idempotency-Key": "lost-midway"}
    try:
        async with running_app(settings) as client:
            checkout = asyncio.ensure_future(client.post("/orders", json=make_cart(), headers=key))
            await eventually(lambda: fake_gateway.stats()["requests"] == 1, what="the authorize")
            proxy.cut()  # while the gateway answers: the write cannot happen, nor the void
            assert (await checkout).status_code == 503
            assert fake_gateway.stats()["authorizations"] == 1
            assert not balanced(fake_gateway, db)  # a hold with no order, for now

            proxy.restore()
            await asyncio.sleep(1.5)  # the claim's lock runs out
            retry = await client.post("/orders", json=make_cart(), headers=key)
            assert retry.status_code == 202
    finally:
        proxy.close()
    assert fake_gateway.stats()["authorizations"] == 1  # the same authorization, found again
    assert count(db, '"order"') == 1
    assert balanced(fake_gateway, db)
