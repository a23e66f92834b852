"""Outbound webhooks that do not arrive at once, with real processes: retries kept in the
database across restarts, batches per endpoint, a slow or failing receiver, the retry horizon,
the attempts' retention."""

import re
from datetime import timedelta

from fulfillment.deliveries import purge_attempts
from orders.config import Settings
from orders.db import make_engine, make_sessionmaker
from stack.processes import Stack
from tests.helpers import OPS, count, eventually, place, settle
from tests.webhooks import register, start_all_in_one, verified


async def test_a_receiver_that_fails_twice_gets_the_same_message_a_third_time(
    webhook_shop, db, receiver
):
    endpoint = await register(
        webhook_shop,
        receiver.script("flaky", statuses=[503, 500], retry_after="1"),
        ["order.placed"],
    )
    await place(webhook_shop)
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


async def test_a_slow_receiver_holds_neither_the_chain_nor_other_endpoints(
    webhook_shop, db, receiver
):
    await register(webhook_shop, receiver.script("slow", delay_ms=4_000), ["order.placed"])
    await register(webhook_shop, receiver.script("quick"), ["order.placed"])
    ids = [(await place(webhook_shop))["id"] for _ in range(3)]

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


async def test_attempts_are_purged_after_the_retention_period(
    webhook_shop, db, receiver, stack_env
):
    await register(webhook_shop, receiver.script("kept"), ["order.placed"])
    await place(webhook_shop)
    await eventually(lambda: count(db, "webhook_attempt") == 1, what="an attempt")
    db.execute("UPDATE webhook_attempt SET attempted_at = now() - interval '31 days'")
    engine = make_engine(Settings(database_url=stack_env["DATABASE_URL"]), "test")
    with make_sessionmaker(engine)() as session:
        assert purge_attempts(session, timedelta(days=30)) == 1
    engine.dispose()
    assert count(db, "webhook_attempt") == 0
    assert count(db, "webhook_delivery WHERE status = 'delivered'") == 1  # the delivery stays
