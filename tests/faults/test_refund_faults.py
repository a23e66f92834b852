"""A worker killed while the gateway is refunding: the redelivered task asks again under the same
idempotency key, so the customer is refunded once and one credit note is numbered."""

import signal
import uuid

import pytest

from tests.helpers import OPS, count, eventually, place, settle, status_of

pytestmark = [pytest.mark.fault, pytest.mark.slow]


async def test_sigkill_during_refund_refunds_once_with_one_credit_note(
    http_gateway_client, db, fake_gateway, processes
):
    worker = processes.worker()
    processes.relay()
    processes.ready()
    order = await place(http_gateway_client)
    assert (await settle(db, [order["id"]])) == {order["id"]: "completed"}
    fake_gateway.configure(latency_ms=3_000)  # the refund is held at the gateway...
    asked = fake_gateway.stats()["requests"]

    response = await http_gateway_client.post(
        f"/ops/orders/{order['id']}/cancel", headers=OPS | {"Idempotency-Key": str(uuid.uuid4())}
    )
    assert response.status_code == 202
    await eventually(
        lambda: fake_gateway.stats()["requests"] > asked, what="the refund at the gateway"
    )
    worker.kill(signal.SIGKILL)  # ...while the worker that asked for it dies
    fake_gateway.configure(latency_ms=0)
    assert count(db, "cancellation WHERE status = 'requested'") == 1

    processes.worker("worker-restarted").wait_ready()
    await eventually(
        lambda: status_of(db, order["id"]) == "refunded", timeout_s=90, what="the refund"
    )
    await eventually(
        lambda: count(db, "credit_note WHERE pdf IS NOT NULL") == 1, what="the credit note"
    )

    assert fake_gateway.stats()["refunds"] == 1
    assert fake_gateway.stats()["refunded_amount"] == 4_920
    assert count(db, "credit_note") == 1
    assert count(db, "order_event WHERE type = 'order.refunded'") == 1
    assert db.execute("SELECT number FROM credit_note").fetchone()[0] == 1
