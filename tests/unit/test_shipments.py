"""Shipping, in-process against PostgreSQL with the fake warehouse: the reservation is consumed
once, and an order whose shipment message was lost (completed, or partially refunded: the rest
still ships) is found stalled and shipped."""

import dataclasses
import uuid
from datetime import timedelta

import pytest

from fulfillment import inventory, invoices, notify, payments, refunds, warehouse
from fulfillment.runner import Context
from orders import lifecycle
from orders.refunds import CancelRequest, request_cancellation
from tests.helpers import count, event_types, status_of, stock
from tests.unit.test_steps import placed


@pytest.fixture
def ctx(step_context: Context, fake_warehouse) -> Context:
    settings = step_context.settings.model_copy(update={"warehouse_url": fake_warehouse.url})
    return dataclasses.replace(step_context, settings=settings)


def completed(ctx: Context, order_id: uuid.UUID) -> None:
    inventory.reserve_inventory(ctx, order_id)
    warehouse.sync_warehouse(ctx, order_id)
    for step in (payments.capture_payment, invoices.render_invoice, notify.notify):
        step(ctx, order_id)


def shipment_lost_and_found(ctx: Context, db, order_id: uuid.UUID) -> None:
    """As if every message so far had been sent ten minutes ago and lost: the stall check finds
    the order and enqueues its shipment again."""
    db.execute("UPDATE outbox SET published_at = now() - interval '10 minutes'")
    db.execute("""UPDATE "order" SET updated_at = now() - interval '10 minutes'""")
    with ctx.sessions() as session:
        stalled = lifecycle.stalled(session, timedelta(minutes=5), limit=10)
        assert [order.id for order in stalled] == [order_id]
        assert lifecycle.requeue(session, stalled[0]) == "fulfillment.ship_order"
        session.commit()


async def test_shipping_consumes_the_reservation_once_and_a_lost_shipment_is_found(
    client, db, ctx, fake_warehouse
):
    order_id = await placed(client)
    completed(ctx, order_id)
    # notify found the order synced and enqueued the shipment
    shipment_lost_and_found(ctx, db, order_id)
    warehouse.ship_order(ctx, order_id)
    warehouse.ship_order(ctx, order_id)  # redelivered

    assert stock(db, "MUG-001") == (498, 0)
    assert count(db, "stock_reservation") == 0
    assert len(fake_warehouse.stats()["shipments"]) == 1
    assert event_types(db, str(order_id))[-3:] == [
        "order.completed",
        "order.stalled",
        "order.shipped",
    ]
    with ctx.sessions() as session:  # shipped: nothing waits any more
        assert lifecycle.stalled(session, timedelta(0), limit=10) == []


async def test_a_partially_refunded_order_whose_shipment_was_lost_is_found(
    client, db, ctx, fake_warehouse
):
    """A partial refund leaves the rest of the order to ship: it waits for its shipment as a
    completed order does."""
    order_id = await placed(client)
    completed(ctx, order_id)
    with ctx.sessions() as session:
        request = CancelRequest("refund-the-notebook", "one notebook", {"NB-A5": 1}, None)
        base_url = ctx.settings.public_base_url
        recorded = request_cancellation(session, order_id, request, base_url)
        assert recorded is not None
        session.commit()
    refunds.refund_payment(ctx, recorded[0].id)
    assert status_of(db, str(order_id)) == "partially_refunded"
    shipment_lost_and_found(ctx, db, order_id)  # (and the credit note's render)
    warehouse.ship_order(ctx, order_id)

    assert len(fake_warehouse.stats()["shipments"]) == 1
    assert event_types(db, str(order_id))[-2:] == ["order.stalled", "order.shipped"]
