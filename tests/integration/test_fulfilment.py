"""The chain with real processes: API -> outbox -> relay -> RabbitMQ -> Celery worker -> PostgreSQL."""

import asyncio
import time
import uuid

import pytest

from fulfillment import inventory
from orders import lifecycle
from orders.messages import Queue
from orders.states import Next
from tests.helpers import (
    COMPLETED_TIMELINE,
    OPS,
    count,
    event_types,
    eventually,
    invoice_numbers,
    place,
    settle,
    status_of,
    stock,
)
from tests.pdfs import pdf_text


async def test_an_order_goes_from_pending_to_completed_with_its_invoice(shop, db, fake_gateway):
    order = await place(shop)
    assert (await settle(db, [order["id"]])) == {order["id"]: "completed"}

    auth = {"Authorization": f"Bearer {order['access_token']}"}
    view = (await shop.get(order["status_url"], headers=auth)).json()
    assert view["status"] == "completed"
    assert view["payment"]["status"] == "captured"
    assert view["links"]["invoice"] == f"/orders/{order['id']}/invoice.pdf"
    events = (await shop.get(order["events_url"], headers=auth)).json()
    assert [e["type"] for e in events] == COMPLETED_TIMELINE
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5]

    response = await shop.get(view["links"]["invoice"], headers=auth)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    pages, text = pdf_text(response.content)
    assert pages >= 1
    assert "INV-000001" in text
    assert "€49.20" in text
    stored = db.execute("SELECT sha256 FROM invoice").fetchone()
    assert response.headers["etag"] == f'"{stored[0]}"'

    assert (await shop.get(view["links"]["invoice"])).status_code == 404  # no token
    assert stock(db, "MUG-001") == (500, 2)
    assert stock(db, "NB-A5") == (1_000, 1)
    assert fake_gateway.stats()["captures"] == 1


async def test_out_of_stock_cancels_voids_the_authorization_and_leaves_stock_alone(
    shop, db, fake_gateway
):
    order = await place(
        shop, lines=[{"sku": "MUG-001", "quantity": 1}, {"sku": "POSTER-LTD", "quantity": 11}]
    )
    assert (await settle(db, [order["id"]])) == {order["id"]: "cancelled"}
    await eventually(lambda: fake_gateway.stats()["voids"] == 1, what="the void at the gateway")
    await eventually(
        lambda: db.execute("SELECT status FROM payment").fetchone()[0] == "voided",
        what="the payment to be marked voided",
    )
    assert stock(db, "MUG-001") == (500, 0)  # the first line was not kept either: all or none
    assert stock(db, "POSTER-LTD") == (10, 0)
    assert count(db, "stock_reservation") == 0
    assert fake_gateway.stats()["captures"] == 0
    cancelled = db.execute("SELECT data FROM order_event WHERE type = 'order.cancelled'").fetchone()
    assert cancelled[0]["reason"] == "out_of_stock"
    assert cancelled[0]["sku"] == "POSTER-LTD"
    assert cancelled[0]["order"]["status"] == "cancelled"


async def test_a_declined_capture_cancels_and_releases_the_stock(shop, db, fake_gateway):
    order = await place(shop, payment_token="tok_chargeCustomerFail")
    assert (await settle(db, [order["id"]])) == {order["id"]: "cancelled"}
    assert event_types(db, order["id"]) == ["order.placed", "order.reserved", "order.cancelled"]
    assert stock(db, "MUG-001") == (500, 0)
    assert count(db, "stock_reservation") == 0
    assert db.execute("SELECT status FROM payment").fetchone()[0] == "declined"
    assert count(db, "invoice") == 0


@pytest.mark.slow
async def test_two_hundred_orders_racing_for_ten_units_never_oversell(shop, db, fake_gateway):
    limit = asyncio.Semaphore(20)

    async def one() -> str:
        async with limit:
            return str((await place(shop, lines=[{"sku": "POSTER-LTD", "quantity": 1}]))["id"])

    ids = await asyncio.gather(*(one() for _ in range(200)))
    statuses = await settle(db, ids, timeout_s=240)

    assert sorted(statuses.values()).count("completed") == 10
    assert sorted(statuses.values()).count("cancelled") == 190
    assert stock(db, "POSTER-LTD") == (10, 10)
    assert count(db, "stock_reservation") == 10
    assert invoice_numbers(db) == list(range(1, 11))
    assert fake_gateway.stats()["captures"] == 10
    await eventually(lambda: fake_gateway.stats()["voids"] == 190, timeout_s=120, what="190 voids")


async def test_a_failed_step_is_retried_from_where_it_stopped(shop, db, fake_gateway):
    fake_gateway.configure(failure_rate=1.0)  # the gateway is down: capture exhausts its retries
    order = await place_after_authorizing(shop, fake_gateway)
    assert (await settle(db, [order["id"]], timeout_s=90)) == {order["id"]: "failed"}
    failed = db.execute('SELECT failed_step, failure_reason FROM "order"').fetchone()
    assert failed[0] == "capture_payment"
    assert "GatewayUnavailable" in failed[1]

    retry_url = f"/ops/orders/{order['id']}/retry"
    unauthorized = await shop.post(retry_url)
    assert unauthorized.status_code == 401
    assert unauthorized.headers["content-type"] == "application/problem+json"
    assert (await shop.post(retry_url, headers={"X-API-Key": "wrong"})).status_code == 401

    fake_gateway.configure(failure_rate=0.0)
    response = await shop.post(retry_url, headers=OPS)
    assert response.status_code == 202
    assert response.json()["resumed_from"] == "capture_payment"
    assert (await settle(db, [order["id"]])) == {order["id"]: "completed"}
    assert event_types(db, order["id"]) == [
        "order.placed",
        "order.reserved",
        "order.failed",
        "order.retry_requested",
        "order.paid",
        "order.invoiced",
        "order.completed",
    ]
    assert (await shop.post(retry_url, headers=OPS)).status_code == 409  # nothing left to retry
    assert fake_gateway.stats()["captures"] == 1


async def place_after_authorizing(shop, fake_gateway):
    """Authorize while the gateway answers, then let it fail for everything after."""
    fake_gateway.configure(failure_rate=0.0)
    order = await place(shop)
    fake_gateway.configure(failure_rate=1.0)
    return order


async def test_events_and_status_are_visible_as_soon_as_committed(shop, db):
    order = await place(shop)
    auth = {"Authorization": f"Bearer {order['access_token']}"}
    seen: list[str] = []
    deadline = time.monotonic() + 60
    while not seen or seen[-1] != "completed":
        assert time.monotonic() < deadline, f"not completed after 60 s; seen {seen}"
        status = (await shop.get(order["status_url"], headers=auth)).json()["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        await asyncio.sleep(0.005)
    assert seen[0] in ("pending", "reserved")
    assert seen == sorted(seen, key=["pending", "reserved", "paid", "invoiced", "completed"].index)
    assert status_of(db, order["id"]) == "completed"


async def test_the_warehouse_gets_the_reservation_once_then_ships_and_the_stock_leaves(
    http_gateway_client, db, processes, fake_warehouse
):
    fake_warehouse.configure(failures=2)  # two 503s, then it accepts
    processes.env["WAREHOUSE_URL"] = fake_warehouse.url
    processes.worker()
    processes.relay()
    processes.ready()
    order = await place(http_gateway_client)
    assert (await settle(db, [order["id"]])) == {order["id"]: "completed"}
    await eventually(
        lambda: db.execute('SELECT shipped_at FROM "order"').fetchone()[0],
        what="the shipment to be recorded",
    )

    stats = fake_warehouse.stats()
    lines = [{"sku": "MUG-001", "quantity": 2}, {"sku": "NB-A5", "quantity": 1}]
    assert stats["reservations"] == [{"order_id": order["id"], "lines": lines}]
    assert [(s["order_id"], s["lines"]) for s in stats["shipments"]] == [(order["id"], lines)]
    assert db.execute('SELECT warehouse_synced_at IS NOT NULL FROM "order"').fetchone() == (True,)
    assert event_types(db, order["id"]) == [*COMPLETED_TIMELINE, "order.shipped"]
    assert stock(db, "MUG-001") == (498, 0)  # shipped: off the shelf, no longer reserved
    assert stock(db, "NB-A5") == (999, 0)
    assert count(db, "stock_reservation") == 0


def stock_ledger(db) -> dict[str, tuple[int, int, int, int]]:
    """Per SKU, read at one instant: on hand, reserved, quantities shipped, and quantities held
    by orders that reserved and have neither shipped nor given their stock back."""
    with db.transaction():
        db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        products = db.execute("SELECT sku, stock_on_hand, stock_reserved FROM product").fetchall()

        def quantities(where: str) -> dict[str, int]:
            rows = db.execute(
                'SELECT l.sku, sum(l.quantity) FROM order_line l JOIN "order" o'
                f" ON o.id = l.order_id WHERE {where} GROUP BY l.sku"
            ).fetchall()
            return {sku: int(quantity) for sku, quantity in rows}

        shipped = quantities("o.shipped_at IS NOT NULL")
        held = quantities(
            "o.shipped_at IS NULL AND o.status IN ('reserved', 'paid', 'invoiced', 'completed')"
        )
    return {
        sku: (on_hand, reserved, shipped.get(sku, 0), held.get(sku, 0))
        for sku, on_hand, reserved in products
    }


@pytest.mark.slow
async def test_stock_balances_through_two_hundred_orders_shipped_cancelled_or_declined(
    http_gateway_client, db, processes, fake_warehouse
):
    processes.env["WAREHOUSE_URL"] = fake_warehouse.url
    processes.worker()
    processes.relay()
    processes.ready()
    initial = {sku: on_hand for sku, (on_hand, *_) in stock_ledger(db).items()}
    limit = asyncio.Semaphore(20)

    async def one(i: int) -> str:
        lines = [{"sku": "POSTER-LTD", "quantity": 1}] if i % 4 == 0 else []  # 50 want 10
        lines += [{"sku": "MUG-001", "quantity": 1 + i % 3}, {"sku": "NB-A5", "quantity": 1}]
        token = "tok_chargeCustomerFail" if i % 10 == 3 else "tok_visa"  # capture declined
        async with limit:
            return str((await place(http_gateway_client, lines=lines, payment_token=token))["id"])

    ids = await asyncio.gather(*(one(i) for i in range(200)))
    await eventually(lambda: count(db, "\"order\" WHERE status = 'completed'") >= 50, 120)
    ledgers = [stock_ledger(db)]  # in flight
    statuses = await settle(db, ids, timeout_s=240)
    completed = list(statuses.values()).count("completed")
    await eventually(
        lambda: count(db, '"order" WHERE shipped_at IS NOT NULL') == completed,
        timeout_s=120,
        what="every completed order to ship",
    )
    ledgers.append(stock_ledger(db))  # at rest

    for ledger in ledgers:
        for sku, (on_hand, reserved, shipped, held) in ledger.items():
            assert initial[sku] - on_hand == shipped, sku
            assert reserved == held, sku
    at_rest = ledgers[-1]
    assert all(reserved == 0 for _, reserved, _, _ in at_rest.values())
    assert at_rest["POSTER-LTD"][0] == 0  # all ten sold, none twice
    assert list(statuses.values()).count("cancelled") >= 20  # the declined captures, at least
    assert len(fake_warehouse.stats()["shipments"]) == completed


async def test_two_relays_at_once_publish_each_row_once(http_gateway_client, db, processes):
    worker = processes.worker()
    processes.relay("relay-1")
    processes.relay("relay-2")
    processes.ready()
    ids = await asyncio.gather(*(place(http_gateway_client) for _ in range(40)))
    await settle(db, [o["id"] for o in ids], timeout_s=120)
    processes.stop()

    received = worker.log().count("Task fulfillment.reserve_inventory[")
    assert received == 40 * 2  # each task logs "received" and "succeeded" once
    assert invoice_numbers(db) == list(range(1, 41))


@pytest.mark.parametrize("priorities", [True, False], ids=["priorities", "fifo"])
async def test_orders_on_their_way_go_before_the_first_step_of_new_ones(
    http_gateway_client, db, processes, step_context, priorities
):
    processes.env["STEP_PRIORITIES"] = str(priorities).lower()
    processes.relay().wait_ready()  # and no worker yet: the messages wait in the queue

    def published() -> int:
        return count(db, "outbox WHERE published_at IS NOT NULL")

    first = await place(http_gateway_client)
    await eventually(lambda: published() == 1, what="the first order's first step")
    # The first order moves on (here, in this process) and its capture, which would have run in
    # the same task, is lost: the stall sweep's message for it goes out behind its first step.
    assert inventory.reserve_inventory(step_context, uuid.UUID(first["id"])) is Next.RUN
    with step_context.sessions() as session:
        order = lifecycle.lock(session, uuid.UUID(first["id"]))
        assert order is not None
        assert lifecycle.requeue(session, order) == "fulfillment.capture_payment"
        session.commit()
    await eventually(lambda: published() == 2, what="its second step")
    for _ in range(5):
        await place(http_gateway_client)
    await eventually(lambda: published() == 7, what="five new orders' first steps")

    worker = processes.worker(queues=Queue.STEPS, concurrency=1).wait_ready()
    await eventually(lambda: "received" in worker.log(), what="a first task")
    received = [
        line.split("Task fulfillment.")[1].split("[")[0]
        for line in worker.log().splitlines()
        if "] received" in line
    ]
    # In flight first with priorities; first in, first out without.
    assert received[0] == ("capture_payment" if priorities else "reserve_inventory")
    # Every order is paid in the end (rendering is on the invoices queue, which nobody takes).
    await eventually(lambda: count(db, "\"order\" WHERE status = 'paid'") == 6, 60, "6 paid")
