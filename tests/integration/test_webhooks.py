"""Outbound webhooks with real processes: endpoints managed by operators, the chain's events
reaching a receiver on loopback signed to the Standard Webhooks spec (checked with the
`standardwebhooks` package), redeliveries and replays, the address a delivery goes to. Retries
and batches: test_webhook_retries.py."""

import uuid

import httpx
import pytest

from fulfillment.config import WorkerSettings
from fulfillment.webhook_requests import Request, send
from tests.helpers import COMPLETED_TIMELINE, OPS, count, eventually, place, settle
from tests.webhooks import register, verified


async def test_endpoints_are_managed_by_operators_only(http_gateway_client, db):
    client = http_gateway_client
    assert (await client.get("/ops/webhook-endpoints")).status_code == 401
    created = await register(client, "http://127.0.0.1:9/hooks", ["order.paid"])
    assert created["secret"].startswith("whsec_")

    listed = (await client.get("/ops/webhook-endpoints", headers=OPS)).json()
    assert [e["id"] for e in listed] == [created["id"]]
    assert "secret" not in listed[0]
    one = await client.get(f"/ops/webhook-endpoints/{created['id']}", headers=OPS)
    assert "secret" not in one.json()

    patched = await client.patch(
        f"/ops/webhook-endpoints/{created['id']}",
        json={"event_types": ["order.paid", "order.cancelled"], "enabled": False},
        headers=OPS,
    )
    assert patched.json()["event_types"] == ["order.cancelled", "order.paid"]
    assert patched.json()["enabled"] is False

    rotated = await client.post(
        f"/ops/webhook-endpoints/{created['id']}/rotate-secret", headers=OPS
    )
    assert rotated.json()["secret"] not in (created["secret"], None)
    assert rotated.json()["previous_secret_expires_at"] is not None

    deleted = await client.delete(f"/ops/webhook-endpoints/{created['id']}", headers=OPS)
    assert deleted.status_code == 204
    assert count(db, "webhook_endpoint") == 0


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("http://10.0.0.8/hooks", "url"),
        ("http://169.254.169.254/latest/meta-data", "url"),
        ("http://192.168.1.10:8080/x", "url"),
        ("ftp://127.0.0.1/hooks", "url"),
        ("http://no-such-host.invalid/hooks", "url"),
    ],
)
async def test_internal_destinations_are_refused_at_registration(
    http_gateway_client, db, url, field
):
    response = await http_gateway_client.post(
        "/ops/webhook-endpoints", json={"url": url, "event_types": ["order.paid"]}, headers=OPS
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == field
    assert count(db, "webhook_endpoint") == 0


async def test_unknown_event_types_are_refused(http_gateway_client, db):
    response = await http_gateway_client.post(
        "/ops/webhook-endpoints",
        json={"url": "http://127.0.0.1:9/x", "event_types": ["order.teleported"]},
        headers=OPS,
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "event_types[0]"


async def test_every_event_of_an_order_arrives_signed_once_with_its_snapshot(
    webhook_shop, db, receiver
):
    endpoint = await register(webhook_shop, receiver.script("webhook_shop-a", delay_ms=150))
    order = await place(webhook_shop)
    await settle(db, [order["id"]])
    await eventually(
        lambda: count(db, "webhook_delivery WHERE status = 'delivered'") == 5,
        what="five webhooks delivered",
    )

    messages = receiver.received("webhook_shop-a")
    payloads = [verified(endpoint["secret"], m) for m in messages]
    assert sorted(p["type"] for p in payloads) == sorted(COMPLETED_TIMELINE)
    by_type = {p["type"]: p for p in payloads}
    assert [by_type[t]["data"]["sequence"] for t in COMPLETED_TIMELINE] == [1, 2, 3, 4, 5]
    assert by_type["order.paid"]["data"]["order"]["status"] == "paid"
    assert by_type["order.placed"]["data"]["order"]["total"] == 4_920
    assert by_type["order.invoiced"]["data"]["order"]["invoice_url"].endswith(
        f"/orders/{order['id']}/invoice.pdf"
    )
    assert "invoice_url" not in by_type["order.paid"]["data"]["order"]
    assert len({m["headers"]["webhook-id"] for m in messages}) == 5

    page = (await webhook_shop.get("/ops/webhook-deliveries", headers=OPS)).json()
    assert {d["status"] for d in page["items"]} == {"delivered"}
    detail = (
        await webhook_shop.get(f"/ops/webhook-deliveries/{page['items'][0]['id']}", headers=OPS)
    ).json()
    assert detail["webhook_id"] == page["items"][0]["webhook_id"]
    assert [a["response_status"] for a in detail["attempt_log"]] == [200]
    assert detail["attempt_log"][0]["request_headers"]["webhook-id"] == detail["webhook_id"]
    # Timed around the request: at least the receiver's delay, at most the read timeout (10 s).
    assert 150 <= detail["attempt_log"][0]["duration_ms"] < 10_000


async def test_410_disables_the_endpoint_and_other_4xx_fail_without_retry(
    webhook_shop, db, receiver
):
    gone = await register(webhook_shop, receiver.script("gone", default=410), ["order.placed"])
    refusing = await register(
        webhook_shop, receiver.script("refusing", default=400), ["order.placed"]
    )
    await place(webhook_shop)
    await eventually(
        lambda: count(db, "webhook_delivery WHERE status = 'failed'") == 2, what="two failures"
    )
    endpoints = {
        e["id"]: e for e in (await webhook_shop.get("/ops/webhook-endpoints", headers=OPS)).json()
    }
    assert endpoints[gone["id"]]["enabled"] is False
    assert "410" in endpoints[gone["id"]]["disabled_reason"]
    assert endpoints[refusing["id"]]["enabled"] is True

    await place(
        webhook_shop
    )  # the disabled endpoint gets nothing more; the other is tried once more
    await eventually(
        lambda: len(receiver.received("refusing")) == 2, what="the second order's webhook"
    )
    assert len(receiver.received("gone")) == 1
    failed = (
        await webhook_shop.get(
            "/ops/webhook-deliveries",
            params={"status": "failed", "endpoint_id": refusing["id"]},
            headers=OPS,
        )
    ).json()["items"]
    assert all(d["attempts"] == 1 for d in failed)


async def test_redelivery_and_replay_resend_under_the_original_webhook_id(
    webhook_shop, db, receiver
):
    endpoint = await register(
        webhook_shop, receiver.script("replays"), ["order.placed", "order.paid"]
    )
    order = await place(webhook_shop)
    await settle(db, [order["id"]])
    await eventually(lambda: len(receiver.received("replays")) == 2, what="two webhooks")
    first = {m["headers"]["webhook-id"] for m in receiver.received("replays")}

    delivery = (await webhook_shop.get("/ops/webhook-deliveries", headers=OPS)).json()["items"][0]
    response = await webhook_shop.post(
        f"/ops/webhook-deliveries/{delivery['id']}/redeliver", headers=OPS
    )
    assert response.status_code == 202
    await eventually(lambda: len(receiver.received("replays")) == 3, what="the redelivery")
    assert receiver.received("replays")[-1]["headers"]["webhook-id"] == delivery["webhook_id"]

    rotated = (
        await webhook_shop.post(
            f"/ops/webhook-endpoints/{endpoint['id']}/rotate-secret", headers=OPS
        )
    ).json()
    replay = await webhook_shop.post(
        f"/ops/webhook-endpoints/{endpoint['id']}/replay",
        json={"since": "2000-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z"},
        headers=OPS,
    )
    assert replay.json() == {"deliveries": 2}
    await eventually(lambda: len(receiver.received("replays")) == 5, what="the replay")
    replayed = receiver.received("replays")[3:]
    assert {m["headers"]["webhook-id"] for m in replayed} == first
    for message in replayed:  # during the grace period both secrets sign
        assert len(message["headers"]["webhook-signature"].split(" ")) == 2
        verified(endpoint["secret"], message)
        verified(rotated["secret"], message)


def test_a_delivery_goes_to_the_address_that_was_checked_whatever_dns_says_next(receiver):
    """Resolved once per attempt, checked, connected to: a name that answers an allowed address
    to the check and a private one right after (DNS rebinding) reaches only the allowed one."""
    answers = iter([["127.0.0.1"], ["10.0.0.7"]])
    asked: list[str] = []

    def rebinding(host: str) -> list[str]:
        asked.append(host)
        return next(answers)

    port = httpx.URL(receiver.url).port
    settings = WorkerSettings(webhook_allowed_hosts="127.0.0.1", webhook_allowed_ports=str(port))
    url = receiver.script("pinned").replace("127.0.0.1", "hooks.example")
    request = Request(uuid.uuid4(), url, b"{}", {"content-type": "application/json"})
    with httpx.Client() as http:
        first = send(http, settings, request, rebinding)
        second = send(http, settings, request, rebinding)

    assert asked == ["hooks.example", "hooks.example"]  # once per attempt
    assert first.status == 200
    received = receiver.received("pinned")
    assert len(received) == 1
    assert received[0]["headers"]["host"] == f"hooks.example:{port}"
    assert second.refused
    assert second.error is not None
    assert "10.0.0.7" in second.error
