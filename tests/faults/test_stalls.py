"""Orders that stop moving: a step the broker refuses waits in the outbox, and an order whose
message was lost is found stalled and its step enqueued again. Every order completes."""

import asyncio
import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from kombu.connection import Connection

from fulfillment.celery_app import app
from fulfillment.relay import relay_batch
from orders.messages import Queue, RunStep, enqueue
from orders.states import Step
from tests.conftest import TEST_VHOST
from tests.helpers import (
    COMPLETED_TIMELINE,
    OPS,
    count,
    event_types,
    eventually,
    invoice_numbers,
    place,
    settle,
)

pytestmark = [pytest.mark.fault, pytest.mark.slow]


def rabbitmqctl(*args: str, check: bool = True) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=check, capture_output=True)


@pytest.fixture
def invoices_refused() -> Iterator[Callable[[], None]]:
    """The invoices queue at a length limit of 0 that refuses publishes: every render step the
    relay publishes is nacked, until the test calls what this yields. Cleared after the test in
    any case."""
    policy = json.dumps({"max-length": 0, "overflow": "reject-publish"})
    queues = f"^{Queue.INVOICES}$"
    rabbitmqctl("set_policy", "-p", TEST_VHOST, "strand", queues, policy, "--apply-to", "queues")

    def clear(check: bool = True) -> None:
        rabbitmqctl("clear_policy", "-p", TEST_VHOST, "strand", check=check)

    yield clear
    clear(check=False)


def statuses(db, ids: list[str]) -> list[str]:
    rows = db.execute('SELECT status FROM "order" WHERE id = ANY(%s::uuid[])', (ids,)).fetchall()
    return sorted(status for (status,) in rows)


async def test_steps_the_broker_refuses_wait_in_the_outbox_and_run_when_it_takes_them(
    http_gateway_client, db, fake_gateway, processes, invoices_refused
):
    processes.worker()
    relay = processes.relay()
    processes.ready()
    ids = [str((await place(http_gateway_client))["id"]) for _ in range(3)]
    await eventually(lambda: statuses(db, ids) == ["paid"] * 3, what="three paid orders")
    await eventually(lambda: "the broker refused outbox row" in relay.log(), what="a refusal")
    await asyncio.sleep(2)  # the relay keeps offering them; they stay paid, nothing is lost
    assert statuses(db, ids) == ["paid"] * 3
    assert count(db, "outbox WHERE published_at IS NULL") == 3  # one render step per order

    invoices_refused()
    cleared = time.monotonic()
    assert set((await settle(db, ids)).values()) == {"completed"}
    print(
        f"strand: 3 paid orders completed {time.monotonic() - cleared:.1f} s after the policy went"
    )
    assert invoice_numbers(db) == [1, 2, 3]
    assert fake_gateway.stats()["captures"] == 3
    assert relay.log().count("the broker refused outbox row") == 3  # once per row
    assert relay.log().count("published after the broker refused it") == 3


async def test_an_order_whose_message_was_lost_is_found_stalled_and_completes(
    http_gateway_client, db, processes
):
    order = await place(http_gateway_client)
    # As if the relay had published the first step and the broker had lost it.
    db.execute("UPDATE outbox SET published_at = now()")
    processes.env |= {"STALL_AFTER_S": "3", "STALL_CHECK_INTERVAL_S": "0.5"}
    processes.worker()
    relay = processes.relay()
    processes.ready()

    assert (await settle(db, [order["id"]], timeout_s=30)) == {order["id"]: "completed"}
    timeline = event_types(db, order["id"])
    assert timeline[:2] == ["order.placed", "order.stalled"]
    assert [event for event in timeline if event != "order.stalled"] == COMPLETED_TIMELINE
    stalled = db.execute("SELECT data FROM order_event WHERE type = 'order.stalled'").fetchall()
    assert stalled[0][0]["task"] == "fulfillment.reserve_inventory"
    assert stalled[0][0]["idle_s"] >= 3
    assert "stalled in pending; fulfillment.reserve_inventory enqueued again" in relay.log()
    summary = (await http_gateway_client.get("/ops/summary", headers=OPS)).json()
    assert summary["stalled"] == len(stalled)


async def test_a_cancellation_whose_void_was_lost_is_found_stalled_and_done(
    http_gateway_client, db, fake_gateway, processes
):
    order = await place(http_gateway_client)
    cancel = await http_gateway_client.post(
        f"/ops/orders/{order['id']}/cancel", headers=OPS | {"Idempotency-Key": "lost-void"}
    )
    assert cancel.status_code == 202
    assert cancel.json()["kind"] == "void"
    # As if the relay had published the void and the broker had lost it.
    db.execute("UPDATE outbox SET published_at = now()")
    processes.env |= {"STALL_AFTER_S": "3", "STALL_CHECK_INTERVAL_S": "0.5"}
    processes.worker()
    relay = processes.relay()
    processes.ready()

    await eventually(
        lambda: count(db, "cancellation WHERE status = 'done'") == 1, 30, "the void, again"
    )
    assert fake_gateway.stats()["voids"] == 1
    assert count(db, "payment WHERE status = 'voided'") == 1
    assert "stalled in its cancellation; fulfillment.void_payment enqueued again" in relay.log()
    assert event_types(db, order["id"]).count("payment.voided") == 1


def test_a_batch_keeps_the_marks_of_what_the_broker_took_and_not_of_what_it_refused(
    broker, step_context, db, invoices_refused
):
    """The relay's one statement marks a batch published as it claims it; the row the broker
    refused is unmarked before the commit, the row it took stays marked."""
    with step_context.sessions() as session:
        for step in (Step.RENDER_INVOICE, Step.RESERVE_INVENTORY):  # invoices refuse, steps take
            enqueue(session, RunStep(order_id=uuid.uuid4(), step=step))
        session.commit()
    refused: set[int] = set()
    with Connection(broker, transport_options={"confirm_publish": True}) as connection:
        for queue in app.conf.task_queues:
            queue(connection.default_channel).declare()
        batch = relay_batch(step_context.sessions, 10, refused, connection.Producer())
        assert batch.claimed == 2

    rows = db.execute("SELECT payload->>'step', published_at IS NOT NULL FROM outbox ORDER BY id")
    assert rows.fetchall() == [("render_invoice", False), ("reserve_inventory", True)]
    assert len(refused) == 1
