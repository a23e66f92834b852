"""What a hostile client or a careless operator sends: refused with a problem that says why,
before anything is written or any card is authorized."""

import json

import pytest

from stack.samples import make_cart
from tests.helpers import OPS, assert_nothing_written, assert_problem, count, new_key

TEXT_FIELDS = [
    ("customer.name", lambda cart, v: cart["customer"].update(name=v)),
    ("shipping_address.name", lambda cart, v: cart["shipping_address"].update(name=v)),
    ("shipping_address.line1", lambda cart, v: cart["shipping_address"].update(line1=v)),
    ("shipping_address.line2", lambda cart, v: cart["shipping_address"].update(line2=v)),
    ("shipping_address.city", lambda cart, v: cart["shipping_address"].update(city=v)),
    (
        "shipping_address.postal_code",
        lambda cart, v: cart["shipping_address"].update(postal_code=v),
    ),
]


@pytest.mark.parametrize(("field", "put"), TEXT_FIELDS, ids=[f for f, _ in TEXT_FIELDS])
@pytest.mark.parametrize(
    "control",
    ["\u0000", "\u001b[31m", "line\nbreak", "\ud800"],
    ids=["nul", "escape", "newline", "surrogate"],
)
async def test_control_characters_in_text_are_refused_before_the_card_is_touched(
    http_gateway_client, db, fake_gateway, field, put, control
):
    cart = make_cart()
    put(cart, f"Ada {control} Lovelace")
    body = json.dumps(cart).encode()  # "\ud800" would not survive httpx's own encoding
    response = await http_gateway_client.post(
        "/orders", content=body, headers=new_key() | {"content-type": "application/json"}
    )
    assert_problem(response, 422, field)
    assert_nothing_written(db)
    assert fake_gateway.stats()["authorizations"] == 0


@pytest.mark.parametrize(
    "quantity", ["2", True, 1e2, 2.5], ids=["string", "bool", "float", "fraction"]
)
async def test_a_quantity_must_be_a_json_integer(client, db, quantity):
    cart = make_cart(lines=[{"sku": "MUG-001", "quantity": quantity}])
    response = await client.post("/orders", json=cart, headers=new_key())
    assert_problem(response, 422, "lines[0].quantity")
    assert_nothing_written(db)


async def test_bodies_that_are_not_json_this_api_reads_get_a_problem_that_says_why(client, db):
    json_ = {"content-type": "application/json"}
    deep = await client.post("/orders", content=b"[" * 30_000, headers=new_key() | json_)
    assert "nests" in assert_problem(deep, 400)["detail"]
    long_number = b'{"customer": ' + b"9" * 5_000 + b"}"
    huge = await client.post("/orders", content=long_number, headers=new_key() | json_)
    assert "number" in assert_problem(huge, 400)["detail"]
    broken = await client.post("/orders", content=b'{"customer": ', headers=new_key() | json_)
    assert "line 1, column 14" in assert_problem(broken, 400)["detail"]
    plain = await client.post(
        "/orders",
        content=json.dumps(make_cart()).encode(),
        headers=new_key() | {"content-type": "text/plain"},
    )
    assert "application/json" in assert_problem(plain, 415)["detail"]
    assert_nothing_written(db)


async def test_two_idempotency_keys_are_one_too_many(client, db):
    headers = [("Idempotency-Key", "one"), ("Idempotency-Key", "two")]
    response = await client.post("/orders", json=make_cart(), headers=headers)
    assert assert_problem(response, 400)["type"] == "/problems/idempotency-key-repeated"
    assert_nothing_written(db)


async def test_the_operators_paths_want_their_key_before_anything_else(client, db):
    response = await client.post(
        "/ops/webhook-endpoints",
        content=b'{"url": ',
        headers={"content-type": "application/json"},
    )
    assert_problem(response, 401)
    response = await client.post(
        "/ops/webhook-endpoints",
        content=b'{"url": ',
        headers=OPS | {"content-type": "application/json"},
    )
    assert_problem(response, 400)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "http://127.0.0.1:9/x\u0000", "event_types": ["order.paid"]}, "url"),
        (
            {
                "url": "http://127.0.0.1:9/x",
                "event_types": ["order.paid"],
                "description": "a\u0000b",
            },
            "description",
        ),
        (
            {"url": "http://127.0.0.1:9/x", "event_types": ["order.paid"], "enabled": "yes"},
            "enabled",
        ),
    ],
    ids=["url", "description", "enabled"],
)
async def test_webhook_endpoints_refuse_control_characters_and_loose_types(client, db, body, field):
    response = await client.post("/ops/webhook-endpoints", json=body, headers=OPS)
    assert_problem(response, 422, field)
    assert count(db, "webhook_endpoint") == 0


async def test_delivery_filters_and_replays_refuse_what_they_cannot_compare(client, db):
    response = await client.get(
        "/ops/webhook-deliveries", params={"event_type": "order.paid\u0000"}, headers=OPS
    )
    assert_problem(response, 422, "event_type")
    endpoint = (
        await client.post(
            "/ops/webhook-endpoints",
            json={"url": "http://127.0.0.1:9/x", "event_types": ["order.paid"]},
            headers=OPS,
        )
    ).json()
    replay = await client.post(
        f"/ops/webhook-endpoints/{endpoint['id']}/replay",
        json={"since": "2026-01-01T00:00:00", "until": "2026-12-31T00:00:00Z"},
        headers=OPS,
    )
    assert_problem(replay, 422, "since")
