"""GET /orders/{id} and /events need the order's access token; anything else looks like 404."""

import uuid

import pytest

from stack.samples import make_cart
from tests.helpers import new_key


@pytest.fixture
async def placed(client, db):
    response = await client.post("/orders", json=make_cart(), headers=new_key())
    assert response.status_code == 202
    return response.json()


async def test_the_token_shows_the_order(client, placed):
    auth = {"Authorization": f"Bearer {placed['access_token']}"}
    response = await client.get(placed["status_url"], headers=auth)
    assert response.status_code == 200
    order = response.json()
    assert order["id"] == placed["id"]
    assert order["status"] == "pending"
    assert order["total"] == 4_920
    assert [line["sku"] for line in order["lines"]] == ["MUG-001", "NB-A5"]
    assert order["payment"] == {
        "status": "authorized",
        "amount": 4_920,
        "card_brand": "visa",
        "card_last4": "4242",
    }
    assert order["links"]["events"] == placed["events_url"]

    events = await client.get(placed["events_url"], headers=auth)
    assert events.status_code == 200
    assert [(e["seq"], e["type"]) for e in events.json()] == [(1, "order.placed")]


async def test_without_the_right_token_every_order_is_404(client, placed):
    other = (await client.post("/orders", json=make_cart(), headers=new_key())).json()
    attempts = {
        "no token": {},
        "wrong token": {"Authorization": "Bearer not-the-token"},
        "other order's token": {"Authorization": f"Bearer {other['access_token']}"},
        "basic auth": {"Authorization": f"Basic {placed['access_token']}"},
    }
    bodies = []
    for path in (placed["status_url"], placed["events_url"]):
        for headers in attempts.values():
            response = await client.get(path, headers=headers)
            assert response.status_code == 404
            assert response.headers["content-type"] == "application/problem+json"
            bodies.append(response.json()["detail"])
    unknown = await client.get(
        f"/orders/{uuid.uuid4()}", headers={"Authorization": f"Bearer {placed['access_token']}"}
    )
    assert unknown.status_code == 404
    assert set(bodies) == {unknown.json()["detail"]}  # nothing tells a wrong token from no order
