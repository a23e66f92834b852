"""Idempotency-Key: replay, mismatch, in-flight conflicts, crash recovery, expiry."""

import asyncio
import uuid
from datetime import timedelta

import httpx

from orders import idempotency
from orders.api.schemas import OrderCreate
from orders.config import Settings
from orders.db import make_engine, make_sessionmaker
from orders.models import utcnow
from stack.samples import make_cart
from tests.helpers import count, new_key


async def test_same_key_same_body_replays_the_first_response(http_gateway_client, db, fake_gateway):
    key = new_key()
    first = await http_gateway_client.post("/orders", json=make_cart(), headers=key)
    again = await http_gateway_client.post("/orders", json=make_cart(), headers=key)

    assert first.status_code == again.status_code == 202
    assert again.content == first.content
    for header in ("location", "retry-after", "content-type"):
        assert again.headers[header] == first.headers[header]
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert count(db, '"order"') == 1
    assert fake_gateway.stats()["authorizations"] == 1


async def test_a_replayed_decline_is_the_same_decline(client, db):
    key = new_key()
    cart = make_cart(payment_token="tok_chargeDeclined")
    first = await client.post("/orders", json=cart, headers=key)
    again = await client.post("/orders", json=cart, headers=key)
    assert first.status_code == again.status_code == 402
    assert again.json() == first.json()
    assert again.headers["content-type"] == "application/problem+json"
    assert count(db, '"order"') == 0


async def test_same_key_other_body_is_422(client, db):
    key = new_key()
    assert (await client.post("/orders", json=make_cart(), headers=key)).status_code == 202
    other = make_cart(lines=[{"sku": "MUG-001", "quantity": 5}])
    response = await client.post("/orders", json=other, headers=key)
    assert response.status_code == 422
    assert response.json()["type"] == "/problems/idempotency-key-reused"
    assert count(db, '"order"') == 1


async def test_fifty_concurrent_requests_with_one_key_make_one_order_and_one_charge(
    http_gateway_client, db, fake_gateway
):
    fake_gateway.configure(
        latency_ms=200
    )  # the first request is still running when the rest arrive
    key = new_key()
    responses = await asyncio.gather(
        *(http_gateway_client.post("/orders", json=make_cart(), headers=key) for _ in range(50))
    )

    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {202, 409}, statuses
    originals = [
        r for r in responses if r.status_code == 202 and "idempotent-replayed" not in r.headers
    ]
    assert len(originals) == 1
    assert statuses.count(409) >= 1
    for conflict in (r for r in responses if r.status_code == 409):
        assert conflict.json()["type"] == "/problems/idempotency-key-in-use"
        assert conflict.headers["retry-after"]
    assert count(db, '"order"') == 1
    assert count(db, "payment") == 1
    assert fake_gateway.stats()["authorizations"] == 1

    after = await http_gateway_client.post("/orders", json=make_cart(), headers=key)
    assert after.status_code == 202
    assert after.json()["id"] == originals[0].json()["id"]


def claim_as_if_a_request_died(db, key: str, order_id: uuid.UUID, locked_ago: timedelta) -> None:
    fingerprint = idempotency.request_hash(OrderCreate(**make_cart()).model_dump(mode="json"))
    locked_at = utcnow() - locked_ago
    db.execute(
        "INSERT INTO idempotency_key (key, request_hash, order_id, status, created_at, locked_at)"
        " VALUES (%s, %s, %s, 'in_progress', %s, %s)",
        (key, fingerprint, order_id, locked_at, locked_at),
    )


async def test_a_fresh_claim_held_by_another_request_is_409(client, db):
    key = str(uuid.uuid4())
    claim_as_if_a_request_died(db, key, uuid.uuid4(), locked_ago=timedelta(seconds=1))
    response = await client.post("/orders", json=make_cart(), headers={"Idempotency-Key": key})
    assert response.status_code == 409
    assert count(db, '"order"') == 0


async def test_a_claim_left_by_a_crashed_request_is_taken_over_with_its_order_id(
    http_gateway_client, db, fake_gateway
):
    key = str(uuid.uuid4())
    order_id = uuid.uuid4()
    claim_as_if_a_request_died(db, key, order_id, locked_ago=timedelta(minutes=5))

    response = await http_gateway_client.post(
        "/orders", json=make_cart(), headers={"Idempotency-Key": key}
    )
    assert response.status_code == 202
    assert response.json()["id"] == str(order_id)
    assert count(db, '"order"') == 1


async def test_gateway_idempotency_key_derives_from_the_order_so_a_retry_charges_once(
    http_gateway_client, db, fake_gateway
):
    """The crashed request had authorized at the gateway before dying; the retry reuses that."""
    key = str(uuid.uuid4())
    order_id = uuid.uuid4()
    claim_as_if_a_request_died(db, key, order_id, locked_ago=timedelta(minutes=5))
    async with httpx.AsyncClient(base_url=fake_gateway.url) as gateway:
        authorized = await gateway.post(
            "/v1/authorizations",
            json={"token": "tok_visa", "amount": 4_920, "currency": "EUR"},
            headers={"Idempotency-Key": f"order-{order_id}-authorize"},
        )
    assert authorized.status_code == 201

    response = await http_gateway_client.post(
        "/orders", json=make_cart(), headers={"Idempotency-Key": key}
    )
    assert response.status_code == 202
    assert fake_gateway.stats()["authorizations"] == 1


async def test_expired_keys_are_purged_and_then_free(client, db, test_settings):
    key = new_key()
    first = await client.post("/orders", json=make_cart(), headers=key)
    assert first.status_code == 202
    db.execute("UPDATE idempotency_key SET created_at = now() - interval '25 hours'")

    again = await client.post("/orders", json=make_cart(), headers=key)
    assert again.status_code == 202
    assert again.json()["id"] != first.json()["id"]
    assert "idempotent-replayed" not in again.headers

    db.execute("UPDATE idempotency_key SET created_at = now() - interval '25 hours'")
    engine = make_engine(Settings(database_url=test_settings().database_url), "test")
    with make_sessionmaker(engine)() as session:
        purged = idempotency.purge_expired(session, timedelta(hours=24))
    engine.dispose()
    assert purged == 1
    assert count(db, "idempotency_key") == 0
