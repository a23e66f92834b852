"""Outbound webhooks with real processes: the chain's events reach a receiver on loopback, signed
to the Standard Webhooks spec (checked with the `standardwebhooks` package), retried from the
database, every attempt logged."""

import base64
import re
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from fulfillment.config import WorkerSettings
from fulfillment.deliveries import purge_attempts
from fulfillment.webhook_requests import Request, send
from orders.config import Settings
from orders.db import make_engine, make_sessionmaker
from orders.messages import Queue
from stack.processes import Stack
from tests.helpers import COMPLETED_TIMELINE, OPS, count, eventually, place, settle

ALL_EVENTS = COMPLETED_TIMELINE


@pytest.fixture
def shop(http_gateway_client: httpx.AsyncClient, processes: Stack) -> httpx.AsyncClient:
    """Order steps and webhooks on workers of their own, as in production, and a relay."""
    processes.worker(queues=f"{Queue.STEPS},{Queue.INVOICES}")
    processes.worker("webhook-worker", queues=Queue.WEBHOOKS)
    processes.relay()
    processes.ready()
    return http_gateway_client


def start_all_in_one(processes: Stack) -> None:
    """One worker on every queue, and a relay."""
    processes.worker()
    processes.relay()
    processes.ready()


async def register(client, url: str, types: list[str] | None = None) -> dict[str, Any]:
    response = await client.post(
        "/ops/webhook-endpoints", json={"url": url, "event_types": types or ALL_EVENTS}, headers=OPS
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def verified(secret: str, message: dict[str, Any]) -> dict[str, Any]:
    payload: dict[str, Any] = Webhook(secret).verify(
        base64.b64decode(message["body_b64"]), message["headers"]
    )
    return payload


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


async def test_every_event_of_an_order_arrives_signed_once_with_its_snapshot(shop, db, receiver):
    endpoint = await register(shop, receiver.script("shop-a", delay_ms=150))
    order = await place(shop)
    await settle(db, [order["id"]])
    await eventually(
        lambda: count(db, "webhook_delivery WHERE status = 'delivered'") == 5,
        what="five webhooks delivered",
    )

    messages = receiver.received("shop-a")
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

    page = (await shop.get("/ops/webhook-deliveries", headers=OPS)).json()
    assert {d["status"] for d in page["items"]} == {"delivered"}
    detail = (
        await shop.get(f"/ops/webhook-deliveries/{page['items'][0]['id']}", headers=OPS)
    ).json()
    assert detail["webhook_id"] == page["items"][0]["webhook_id"]
    assert [a["response_status"] for a in detail["attempt_log"]] == [200]
    assert detail["attempt_log"][0]["request_headers"]["webhook-id"] == detail["webhook_id"]
    # Timed around the request: at least the receiver's delay, at most the read timeout (10 s).
    assert 150 <= detail["attempt_log"][0]["duration_ms"] < 10_000


async def test_a_receiver_that_fails_twice_gets_the_same_message_a_third_time(shop, db, receiver):
    endpoint = await register(
        shop, receiver.script("flaky", statuses=[503, 500], retry_after="1"), ["order.placed"]
    )
    await place(shop)
    await eventually(lambda: len(receiver.received("flaky")) == 3, what="three attempts")
    await eventually(
        lambda: count(db, "webhook_delivery WHERE status = 'delivered'") == 1, what="delivered"
    )
    messages = receiver.received("flaky")
    assert len({m["headers"]["webhook-id"] for m in messages}) == 1
    assert len({m["body_b64"] for m in messages}) == 1  # the same bytes every time
    for message in messages:
        verified(endpoint["secret"], message)
    attempts = db.execute(
        "SELECT response_status FROM webhook_attempt ORDER BY attempted_at"
    ).fetchall()
    assert [a[0] for a in attempts] == [503, 500, 200]


def batches(processes: Stack) -> int:
    """How many webhook tasks the worker took."""
    return len(re.findall(r"deliver_webhooks\[[^]]+\] received", processes.named("worker").log()))


async def placed_before_the_relay(client, processes: Stack, count_: int) -> list[str]:
    """`count_` orders placed while no relay runs, then the relay: their `order.placed` events
    wait in the outbox and reach the relay in one batch."""
    processes.worker()
    processes.ready()
    ids = [(await place(client))["id"] for _ in range(count_)]
    processes.relay()
    processes.ready()
    return ids


async def test_deliveries_due_to_one_endpoint_go_out_in_one_task_in_event_order(
    http_gateway_client, db, receiver, processes
):
    endpoint = await register(http_gateway_client, receiver.script("batched"), ["order.placed"])
    ids = await placed_before_the_relay(http_gateway_client, processes, 3)
    await eventually(
        lambda: count(db, "webhook_delivery WHERE status = 'delivered'") == 3, what="three"
    )

    payloads = [verified(endpoint["secret"], m) for m in receiver.received("batched")]
    assert [p["data"]["order"]["id"] for p in payloads] == ids  # one after another, in order
    assert batches(processes) == 1
    assert count(db, "webhook_attempt") == 3


async def test_a_failing_receiver_stops_its_batch_and_hands_the_rest_back_unattempted(
    http_gateway_client, db, receiver, processes
):
    await register(
        http_gateway_client,
        receiver.script("stops", statuses=[503], retry_after="2"),
        ["order.placed"],
    )
    await placed_before_the_relay(http_gateway_client, processes, 3)
    await eventually(
        lambda: count(db, "webhook_delivery WHERE status = 'delivered'") == 3, what="three"
    )

    bodies = [m["body_b64"] for m in receiver.received("stops")]
    # The 503 stopped the first batch at once; the other two went in the next, before the
    # failed one's retry, so nothing waits behind a delivery the receiver keeps failing.
    assert len(bodies) == 4
    assert bodies[3] == bodies[0]
    attempts = db.execute("SELECT attempts FROM webhook_delivery ORDER BY event_id").fetchall()
    assert [a[0] for a in attempts] == [2, 1, 1]  # the two handed back were never attempted
    assert count(db, "webhook_attempt") == 4
    assert batches(processes) == 3


async def test_410_disables_the_endpoint_and_other_4xx_fail_without_retry(shop, db, receiver):
    gone = await register(shop, receiver.script("gone", default=410), ["order.placed"])
    refusing = await register(shop, receiver.script("refusing", default=400), ["order.placed"])
    await place(shop)
    await eventually(
        lambda: count(db, "webhook_delivery WHERE status = 'failed'") == 2, what="two failures"
    )
    endpoints = {e["id"]: e for e in (await shop.get("/ops/webhook-endpoints", headers=OPS)).json()}
    assert endpoints[gone["id"]]["enabled"] is False
    assert "410" in endpoints[gone["id"]]["disabled_reason"]
    assert endpoints[refusing["id"]]["enabled"] is True

    await place(shop)  # the disabled endpoint gets nothing more; the other is tried once more
    await eventually(
        lambda: len(receiver.received("refusing")) == 2, what="the second order's webhook"
    )
    assert len(receiver.received("gone")) == 1
    failed = (
        await shop.get(
            "/ops/webhook-deliveries",
            params={"status": "failed", "endpoint_id": refusing["id"]},
            headers=OPS,
        )
    ).json()["items"]
    assert all(d["attempts"] == 1 for d in failed)


async def test_redelivery_and_replay_resend_under_the_original_webhook_id(shop, db, receiver):
    endpoint = await register(shop, receiver.script("replays"), ["order.placed", "order.paid"])
    order = await place(shop)
    await settle(db, [order["id"]])
    await eventually(lambda: len(receiver.received("replays")) == 2, what="two webhooks")
    first = {m["headers"]["webhook-id"] for m in receiver.received("replays")}

    delivery = (await shop.get("/ops/webhook-deliveries", headers=OPS)).json()["items"][0]
    response = await shop.post(f"/ops/webhook-deliveries/{delivery['id']}/redeliver", headers=OPS)
    assert response.status_code == 202
    await eventually(lambda: len(receiver.received("replays")) == 3, what="the redelivery")
    assert receiver.received("replays")[-1]["headers"]["webhook-id"] == delivery["webhook_id"]

    rotated = (
        await shop.post(f"/ops/webhook-endpoints/{endpoint['id']}/rotate-secret", headers=OPS)
    ).json()
    replay = await shop.post(
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


async def test_scheduled_retries_live_in_the_database_and_survive_restarts(
    http_gateway_client, db, receiver, processes
):
    await register(http_gateway_client, receiver.script("down", default=503), ["order.placed"])
    processes.env |= {"WEBHOOK_BACKOFF_BASE_S": "3", "WEBHOOK_BACKOFF_MAX_S": "3"}
    start_all_in_one(processes)
    await place(http_gateway_client)
    # Kill after the first attempt is recorded: an attempt cut off mid-flight keeps its lease
    # (connect + read timeouts + 30 s) before anyone may try again.
    await eventually(lambda: count(db, "webhook_attempt") >= 1, what="a first, failed attempt")
    for process in processes.processes:
        process.kill()  # worker and relay die; the next attempt is a row in PostgreSQL
    row = db.execute("SELECT status, next_attempt_at FROM webhook_delivery").fetchone()
    assert row[0] == "pending"
    assert row[1] is not None

    receiver.script("down", default=200)
    processes.stop()
    start_all_in_one(processes)
    await eventually(
        lambda: count(db, "webhook_delivery WHERE status = 'delivered'") == 1,
        what="the delivery after the restart",
    )
    ids = {m["headers"]["webhook-id"] for m in receiver.received("down")}
    assert len(ids) == 1


async def test_a_slow_receiver_holds_neither_the_chain_nor_other_endpoints(shop, db, receiver):
    await register(shop, receiver.script("slow", delay_ms=4_000), ["order.placed"])
    await register(shop, receiver.script("quick"), ["order.placed"])
    ids = [(await place(shop))["id"] for _ in range(3)]

    await settle(db, ids)
    await eventually(
        lambda: len(receiver.received("quick")) == 3, what="the quick endpoint's three"
    )
    # By then the slow one has had at most one request open at a time (the cap is 1).
    assert len(receiver.received("slow")) < 3
    assert receiver.most_at_once("slow") == 1


async def test_retries_stop_at_the_horizon_and_repeated_failures_disable_the_endpoint(
    http_gateway_client, db, receiver, processes
):
    endpoint = await register(
        http_gateway_client, receiver.script("dead", default=503), ["order.placed"]
    )
    processes.env["WEBHOOK_RETRY_HORIZON_HOURS"] = "0.0005"  # about 2 s
    start_all_in_one(processes)
    for _ in range(3):
        await place(http_gateway_client)
    await eventually(
        lambda: count(db, "webhook_delivery WHERE status = 'failed'") == 3,
        what="three deliveries past their horizon",
    )
    processes.stop()
    assert len(receiver.received("dead")) >= 6  # each was retried before giving up
    state = (
        await http_gateway_client.get(f"/ops/webhook-endpoints/{endpoint['id']}", headers=OPS)
    ).json()
    assert state["enabled"] is False
    assert state["disabled_reason"] == "3 consecutive failed deliveries"


async def test_attempts_are_purged_after_the_retention_period(shop, db, receiver, stack_env):
    await register(shop, receiver.script("kept"), ["order.placed"])
    await place(shop)
    await eventually(lambda: count(db, "webhook_attempt") == 1, what="an attempt")
    db.execute("UPDATE webhook_attempt SET attempted_at = now() - interval '31 days'")
    engine = make_engine(Settings(database_url=stack_env["DATABASE_URL"]), "test")
    with make_sessionmaker(engine)() as session:
        assert purge_attempts(session, timedelta(days=30)) == 1
    engine.dispose()
    assert count(db, "webhook_attempt") == 0
    assert count(db, "webhook_delivery WHERE status = 'delivered'") == 1  # the delivery stays


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
