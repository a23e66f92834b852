"""An order's event on PostgreSQL: one statement writes it, its webhook deliveries and the message
that sends them; the relay is woken only when there is such a message."""

import uuid

import psycopg

from orders import events
from orders.db import libpq_url
from tests.helpers import place


def deliveries_and_messages(db: psycopg.Connection) -> tuple[int, list[int]]:
    deliveries = db.execute("SELECT count(*) FROM webhook_delivery").fetchone()
    messages = db.execute(
        "SELECT (payload->>'event_id')::bigint FROM outbox WHERE kind = 'deliver_webhooks'"
    ).fetchall()
    assert deliveries is not None
    return deliveries[0], [event_id for (event_id,) in messages]


async def test_an_event_wakes_the_relay_only_when_an_endpoint_subscribed(
    client, db, step_context, database_url
):
    order_id = uuid.UUID((await place(client))["id"])
    with psycopg.connect(libpq_url(database_url), autocommit=True) as listener:
        listener.execute("LISTEN outbox")

        with step_context.sessions() as session:
            unheard = events.record(session, order_id, "order.paid", {"n": 1})
            session.commit()
        assert list(listener.notifies(timeout=1, stop_after=1)) == []
        assert deliveries_and_messages(db) == (0, [])

        db.execute(
            "INSERT INTO webhook_endpoint (id, url, description, event_types, enabled, secret,"
            " consecutive_failures, created_at, updated_at) VALUES (gen_random_uuid(),"
            " 'http://127.0.0.1:9/hook', '', '[\"order.paid\"]', true, 's', 0, now(), now())"
        )
        with step_context.sessions() as session:
            heard = events.record(session, order_id, "order.paid", {"n": 2})
            session.commit()
        assert len(list(listener.notifies(timeout=5, stop_after=1))) == 1

    assert deliveries_and_messages(db) == (1, [heard])
    seqs = db.execute(
        "SELECT id, seq, data->>'n' FROM order_event WHERE order_id = %s ORDER BY seq", (order_id,)
    ).fetchall()
    assert seqs[1:] == [(unheard, 2, "1"), (heard, 3, "2")]  # after order.placed, in order
