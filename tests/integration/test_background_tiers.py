"""The lighter tiers after the 202: the ops actions' audit rows and the order-received email (BackgroundTasks,
against a real SMTP server on loopback), the analytics ping (the asyncio registry)."""

import asyncio
import base64
import json
import logging
from collections.abc import Iterator
from email import message_from_bytes
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from orders.api.aftercare import EMAILS
from stack.processes import free_port
from stack.samples import make_cart
from tests.helpers import count, eventually, new_key, running_app


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield mailbox, controller.port
    controller.stop()


async def test_the_order_received_email_arrives_with_the_order_number(db, test_settings, smtp):
    mailbox, port = smtp
    async with running_app(test_settings(smtp_host="127.0.0.1", smtp_port=port)) as client:
        response = await client.post("/orders", json=make_cart(), headers=new_key())
    assert response.status_code == 202
    number = response.json()["number"]
    await eventually(lambda: mailbox.messages, timeout_s=10, what="the email")
    mail = mailbox.messages[0]
    assert mail["To"] == "ada@example.com"
    assert str(number) in mail["Subject"]
    assert "€49.20" in mail.get_payload(decode=True).decode()


async def test_an_smtp_failure_is_logged_and_counted_and_the_202_stands(
    db, test_settings, caplog: pytest.LogCaptureFixture
):
    before = EMAILS.labels("failed")._value.get()
    settings = test_settings(smtp_host="127.0.0.1", smtp_port=free_port(), smtp_timeout_s=1)
    with caplog.at_level(logging.WARNING):
        async with running_app(settings) as client:
            response = await client.post("/orders", json=make_cart(), headers=new_key())
        await asyncio.sleep(0.2)
    assert response.status_code == 202
    assert EMAILS.labels("failed")._value.get() == before + 1
    assert "order-received email" in caplog.text
    assert count(db, '"order"') == 1


async def test_state_changing_calls_leave_an_audit_row(db, client):
    key = new_key()
    placed = (await client.post("/orders", json=make_cart(), headers=key)).json()
    await client.post("/orders", json=make_cart(), headers=key)  # a replay changes nothing
    await eventually(lambda: count(db, "audit_log") >= 1, timeout_s=10, what="the audit row")
    await asyncio.sleep(0.1)
    rows = db.execute("SELECT action, actor, order_id::text, request_id FROM audit_log").fetchall()
    assert len(rows) == 1
    assert rows[0][:3] == ("order.placed", "storefront", placed["id"])
    assert rows[0][3]  # the request id

    await client.post(
        "/ops/webhook-endpoints",
        json={"url": "http://127.0.0.1:9/x", "event_types": ["order.paid"]},
        headers={"X-API-Key": "change-me", "X-Request-ID": "req-from-the-dashboard"},
    )
    await eventually(lambda: count(db, "audit_log") == 2, timeout_s=10, what="the ops audit row")
    ops_row = db.execute(
        "SELECT action, actor, request_id FROM audit_log WHERE actor = 'ops'"
    ).fetchone()
    assert ops_row == ("webhook_endpoint.created", "ops", "req-from-the-dashboard")


async def test_checkout_pings_analytics_through_the_registry(db, test_settings, receiver):
    url = receiver.script("analytics")
    async with running_app(test_settings(analytics_url=url)) as client:
        order = (await client.post("/orders", json=make_cart(), headers=new_key())).json()
    # The lifespan drained the registry on shutdown: the ping has landed.
    pings = receiver.received("analytics")
    assert len(pings) == 1
    body = json.loads(base64.b64decode(pings[0]["body_b64"]))
    assert body["event"] == "checkout.completed"
    assert body["order_id"] == order["id"]
