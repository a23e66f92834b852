"""Cancellations through the real stack: a void before capture, a whole refund and partial refunds
after completion, each refund with its credit note, and the refusals (RFC 9457)."""

import uuid
from typing import Any

import httpx

from tests.helpers import (
    OPS,
    assert_problem,
    count,
    event_types,
    eventually,
    new_key,
    place,
    settle,
    status_of,
    stock,
)
from tests.pdfs import overlapping_words, pdf_text


async def cancel(
    client: httpx.AsyncClient, order_id: str, key: str | None = None, **body: Any
) -> httpx.Response:
    headers = OPS | {"Idempotency-Key": key or str(uuid.uuid4())}
    return await client.post(f"/ops/orders/{order_id}/cancel", json=body or None, headers=headers)


async def completed_order(shop: httpx.AsyncClient, db) -> dict[str, Any]:
    order = await place(shop)  # MUG-001 x2 at €14.50, NB-A5 x1 at €12.00; €49.20 with 20 % tax
    assert (await settle(db, [order["id"]])) == {order["id"]: "completed"}
    return order


async def credit_note(shop: httpx.AsyncClient, db, order: dict[str, Any], number: str) -> bytes:
    """The credit note as the storefront fetches it, once rendered."""
    auth = {"Authorization": f"Bearer {order['access_token']}"}
    url = f"/orders/{order['id']}/credit-notes/{number}.pdf"
    rendered = f"credit_note WHERE number = {int(number[3:])} AND pdf IS NOT NULL"
    await eventually(lambda: count(db, rendered) == 1, what=f"credit note {number}")
    assert (await shop.get(url)).status_code == 404  # the order's token is needed
    response = await shop.get(url, headers=auth)
    assert response.headers["content-type"] == "application/pdf"
    return response.content


async def test_a_pending_order_is_cancelled_at_once_and_its_authorization_voided(
    http_gateway_client, db, fake_gateway, processes
):
    order = await place(http_gateway_client)  # no worker yet: it stays pending

    response = await cancel(http_gateway_client, order["id"], reason="customer changed mind")

    assert response.status_code == 202
    assert response.headers["location"] == f"/ops/orders/{order['id']}"
    assert response.json() | {"id": None} == {
        "id": None,
        "order_id": order["id"],
        "kind": "void",
        "status": "requested",
        "whole_order": True,
        "lines": [],
        "amount": 0,
        "replayed": False,
    }
    assert status_of(db, order["id"]) == "cancelled"
    processes.worker()
    processes.relay()
    processes.ready()
    await eventually(lambda: fake_gateway.stats()["voids"] == 1, what="the void at the gateway")
    await eventually(
        lambda: count(db, "cancellation WHERE status = 'done'") == 1, what="the void recorded"
    )
    assert db.execute("SELECT status FROM payment").fetchone()[0] == "voided"
    assert fake_gateway.stats()["captures"] == 0
    assert stock(db, "MUG-001") == (500, 0)
    assert event_types(db, order["id"]) == ["order.placed", "order.cancelled", "payment.voided"]
    assert_problem(
        await cancel(http_gateway_client, order["id"], lines=[{"sku": "MUG-001", "quantity": 1}]),
        409,
    )


async def test_a_completed_order_is_refunded_once_with_a_credit_note(shop, db, fake_gateway):
    order = await completed_order(shop, db)
    key = str(uuid.uuid4())

    first = await cancel(shop, order["id"], key=key)

    assert first.status_code == 202
    assert first.json()["kind"] == "refund"
    assert first.json()["amount"] == 4_920
    await eventually(lambda: status_of(db, order["id"]) == "refunded", what="the refund")
    pdf = await credit_note(shop, db, order, "CN-000001")
    _, text = pdf_text(pdf)
    assert "Credit note CN-000001" in text
    assert "INV-000001" in text
    assert "Total credited €49.20" in text
    assert overlapping_words(pdf) == []

    again = await cancel(shop, order["id"], key=key)  # a retry: the same cancellation
    assert again.status_code == 202
    assert again.json() == first.json() | {"status": "done", "replayed": True}
    assert fake_gateway.stats()["refunds"] == 1
    assert fake_gateway.stats()["refunded_amount"] == 4_920
    assert count(db, "credit_note") == 1
    assert stock(db, "MUG-001") == (500, 0)  # it had not shipped: the stock is back
    assert stock(db, "NB-A5") == (1_000, 0)
    assert db.execute("SELECT status FROM payment").fetchone()[0] == "refunded"
    assert event_types(db, order["id"])[-2:] == ["order.cancelled", "order.refunded"]
    refunded = db.execute("SELECT data FROM order_event WHERE type = 'order.refunded'").fetchone()
    assert refunded[0]["refund"]["credit_note"] == "CN-000001"
    assert refunded[0]["refund"]["amount"] == 4_920

    assert_problem(await cancel(shop, order["id"], key=key, reason="other"), 422)  # reused key
    assert_problem(await cancel(shop, order["id"]), 409)  # nothing left to cancel


async def test_lines_are_refunded_one_credit_note_each_until_nothing_is_left(
    shop, db, fake_gateway
):
    order = await completed_order(shop, db)

    one_mug = await cancel(shop, order["id"], lines=[{"sku": "MUG-001", "quantity": 1}])

    assert one_mug.status_code == 202
    assert one_mug.json()["amount"] == 1_450 + 290  # the line and its 20 % tax
    await eventually(
        lambda: status_of(db, order["id"]) == "partially_refunded", what="the partial refund"
    )
    _, text = pdf_text(await credit_note(shop, db, order, "CN-000001"))
    assert "MUG-001" in text
    assert "NB-A5" not in text
    assert "Total credited €17.40" in text
    assert stock(db, "MUG-001") == (500, 1)  # one mug back on the shelf, one still held

    too_many = await cancel(shop, order["id"], lines=[{"sku": "MUG-001", "quantity": 2}])
    assert_problem(too_many, 422, "lines[0].quantity")
    unknown = await cancel(shop, order["id"], lines=[{"sku": "NOPE-1", "quantity": 1}])
    assert_problem(unknown, 422, "lines[0].quantity")
    twice = [{"sku": "NB-A5", "quantity": 1}, {"sku": "NB-A5", "quantity": 1}]
    assert_problem(await cancel(shop, order["id"], lines=twice), 422, "lines[1].sku")
    as_text = await cancel(shop, order["id"], lines=[{"sku": "NB-A5", "quantity": "1"}])
    assert_problem(as_text, 422, "lines[0].quantity")

    rest = await cancel(shop, order["id"])  # the whole of what is left

    assert rest.json()["amount"] == 4_920 - 1_740
    await eventually(lambda: status_of(db, order["id"]) == "refunded", what="the rest refunded")
    _, text = pdf_text(await credit_note(shop, db, order, "CN-000002"))
    assert "Total credited €31.80" in text
    assert fake_gateway.stats()["refunds"] == 2
    assert fake_gateway.stats()["refunded_amount"] == 4_920
    assert stock(db, "MUG-001") == (500, 0)
    assert stock(db, "NB-A5") == (1_000, 0)


async def test_cancel_needs_a_key_and_an_order(http_gateway_client, db):
    order = await place(http_gateway_client)
    url = f"/ops/orders/{order['id']}/cancel"

    no_key = await http_gateway_client.post(url, headers=OPS)
    assert_problem(no_key, 400)
    missing = await cancel(http_gateway_client, str(uuid.uuid4()))
    assert_problem(missing, 404)
    no_ops_key = await http_gateway_client.post(url, headers=new_key())
    assert no_ops_key.status_code == 401
    assert status_of(db, order["id"]) == "pending"
    assert count(db, "cancellation") == 0
