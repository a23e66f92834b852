"""The steps called in-process, against PostgreSQL, with the sandbox gateway and no broker: what
each one commits, and that a redelivered step does not repeat its effect."""

import dataclasses
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from fulfillment import inventory, invoices, notify, payments
from fulfillment.runner import Context, Handover, begin, mark_failed
from fulfillment.tasks import RUNNING, run_steps
from orders.payments import GatewayUnavailable, SandboxGateway
from orders.states import Next, Step
from tests.helpers import (
    COMPLETED_TIMELINE,
    count,
    event_types,
    invoice_numbers,
    place,
    status_of,
    stock,
)


@pytest.fixture
def ctx(step_context: Context) -> Context:
    return step_context


def asked(ctx: Context) -> list[str]:
    assert isinstance(ctx.gateway, SandboxGateway)
    return [action for action, _ in ctx.gateway.asked]


class Unavailable(SandboxGateway):
    def capture(self, authorization_id: str, idempotency_key: str) -> None:
        raise GatewayUnavailable("down")


def steps_enqueued(db) -> list[str]:
    rows = db.execute("SELECT payload FROM outbox WHERE kind = 'run_step' ORDER BY id").fetchall()
    return [payload["step"] for (payload,) in rows]


async def placed(client: httpx.AsyncClient, **cart: Any) -> uuid.UUID:
    return uuid.UUID((await place(client, **cart))["id"])


async def test_the_chain_in_process_takes_an_order_to_completed(client, db, ctx):
    order_id = await placed(client)

    assert inventory.reserve_inventory(ctx, order_id) is Next.RUN
    assert payments.capture_payment(ctx, order_id) is Next.RUN
    assert invoices.render_invoice(ctx, order_id) is Next.RUN
    assert status_of(db, str(order_id)) == "completed"  # notify ran in the render's commit
    assert notify.notify(ctx, order_id) is Next.DONE  # so a notify of its own has nothing to do

    assert event_types(db, str(order_id)) == COMPLETED_TIMELINE
    assert stock(db, "MUG-001") == (500, 2)
    assert invoice_numbers(db) == [1]
    assert asked(ctx) == ["capture"]
    invoiced = db.execute("SELECT data FROM order_event WHERE type = 'order.invoiced'").fetchone()
    assert invoiced[0]["invoice_number"] == "INV-000001"
    assert invoiced[0]["order"]["invoice_url"] == f"http://shop.test/orders/{order_id}/invoice.pdf"
    assert [line["sku"] for line in invoiced[0]["order"]["lines"]] == ["MUG-001", "NB-A5"]
    # The checkout enqueued the first step; a step's commit enqueued the next one unless it
    # continues in the same task (capture after reserve, notify after the render).
    assert steps_enqueued(db) == ["reserve_inventory", "render_invoice"]


def statements_of(ctx: Context, step: Step, order_id: uuid.UUID) -> tuple[list[str], int]:
    """The first word of each statement the task for `step` sends, and how many commits."""
    engine = ctx.sessions.kw["bind"]
    statements: list[str] = []
    commits: list[None] = []

    def statement(conn, cursor, sql: str, *args: Any) -> None:
        statements.append(sql.split(maxsplit=1)[0])

    def commit(conn) -> None:
        commits.append(None)

    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "commit", commit)
    try:
        assert run_steps(ctx, step, str(order_id)) == "run"
    finally:
        event.remove(engine, "before_cursor_execute", statement)
        event.remove(engine, "commit", commit)
    return statements, len(commits)


async def test_each_task_of_an_order_sends_the_statements_pinned_here(client, db, ctx):
    """The tasks every order runs: a change that adds a transaction or a statement to them costs
    each order CPU in the workers and in PostgreSQL, and fails here first."""
    order_id = await placed(client)  # two lines

    assert statements_of(ctx, Step.RESERVE_INVENTORY, order_id) == (
        [
            *["UPDATE", "SELECT"],  # reserve's delivery counted; lines and authorization read
            *["SELECT", "UPDATE", "UPDATE", "INSERT"],  # the order locked; its stock reserved
            # order.reserved, then the order's row at the commit, capture's delivery counted in it
            *["WITH", "UPDATE"],
            *["SELECT", "UPDATE"],  # (the capture) the order locked; the payment captured
            *["WITH", "UPDATE", "INSERT"],  # order.paid (with the lines held); render next
        ],
        3,
    )
    assert statements_of(ctx, Step.RENDER_INVOICE, order_id) == (
        [
            *["UPDATE", "SELECT"],  # the delivery counted; the order, its invoice, its lines
            "WITH",  # the invoice numbered
            *["SELECT", "UPDATE"],  # (the render) the order locked; the PDF stored
            *["WITH", "WITH", "UPDATE"],  # order.invoiced, order.completed: one row update
        ],
        2,
    )
    assert status_of(db, str(order_id)) == "completed"


async def test_a_redelivered_step_finds_its_work_done_and_repeats_nothing(client, db, ctx):
    order_id = await placed(client)
    inventory.reserve_inventory(ctx, order_id)
    payments.capture_payment(ctx, order_id)

    assert inventory.reserve_inventory(ctx, order_id) is Next.DONE
    assert payments.capture_payment(ctx, order_id) is Next.DONE

    assert stock(db, "MUG-001") == (500, 2)  # reserved once
    assert count(db, "stock_reservation") == 2
    assert asked(ctx) == ["capture"]  # the gateway was asked once
    assert event_types(db, str(order_id)) == ["order.placed", "order.reserved", "order.paid"]
    assert steps_enqueued(db) == ["reserve_inventory", "render_invoice"]


async def test_a_task_runs_its_step_and_those_that_continue_in_it(client, db, ctx):
    order_id = await placed(client)

    assert run_steps(ctx, Step.RESERVE_INVENTORY, str(order_id)) == "run"
    assert status_of(db, str(order_id)) == "paid"  # capture ran in the reserve task
    assert run_steps(ctx, Step.RENDER_INVOICE, str(order_id)) == "run"
    assert status_of(db, str(order_id)) == "completed"  # and notify in the render task
    assert event_types(db, str(order_id)) == COMPLETED_TIMELINE
    assert steps_enqueued(db) == ["reserve_inventory", "render_invoice"]


async def test_a_task_redelivered_after_its_first_step_goes_on_from_the_second(client, db, ctx):
    order_id = await placed(client)
    # The worker committed the reservation, then died before the capture: the message that
    # started the task was not acknowledged, so it comes again.
    inventory.reserve_inventory(ctx, order_id)

    assert run_steps(ctx, Step.RESERVE_INVENTORY, str(order_id)) == "run"
    assert status_of(db, str(order_id)) == "paid"
    assert stock(db, "MUG-001") == (500, 2)  # reserved once
    assert asked(ctx) == ["capture"]
    # Once more, with everything done: nothing is repeated.
    assert run_steps(ctx, Step.RESERVE_INVENTORY, str(order_id)) == "done"
    assert asked(ctx) == ["capture"]


async def test_a_failure_in_a_step_that_continued_is_that_steps(client, db, ctx):
    order_id = await placed(client)
    down = dataclasses.replace(ctx, gateway=Unavailable())

    with pytest.raises(GatewayUnavailable):
        run_steps(down, Step.RESERVE_INVENTORY, str(order_id))
    assert RUNNING.get() is Step.CAPTURE_PAYMENT  # what on_retry and on_failure are told
    assert status_of(db, str(order_id)) == "reserved"
    mark_failed(ctx, order_id, Step.CAPTURE_PAYMENT, "GatewayUnavailable: down")
    assert status_of(db, str(order_id)) == "failed"


def counted(db, order_id: uuid.UUID) -> tuple[Any, ...]:
    row = db.execute('SELECT status, step, step_attempts FROM "order" WHERE id = %s', (order_id,))
    return tuple(row.fetchone())


async def test_reserve_counts_the_delivery_of_the_capture_that_follows_it_in_the_task(
    client, db, ctx
):
    """Capture runs right after reserve's commit in the same task, so that commit counts its
    delivery; a worker lost during the capture leaves it counted, and the redelivery counts the
    next one: the poison count is the same as with a `begin` of its own."""
    order_id = await placed(client)
    handover = Handover()
    assert inventory.reserve_inventory(ctx, order_id, handover) is Next.RUN
    assert handover.counted
    assert handover.placed is not None
    assert [line.sku for line in handover.placed.lines] == ["MUG-001", "NB-A5"]
    assert counted(db, order_id) == ("reserved", "capture_payment", 1)

    # The worker died during the capture: the task comes again; reserve finds itself done.
    assert run_steps(ctx, Step.RESERVE_INVENTORY, str(order_id)) == "run"
    assert asked(ctx) == ["capture"]
    assert event_types(db, str(order_id))[-1] == "order.paid"


async def test_a_capture_that_keeps_crashing_after_reserve_fails_the_order(client, db, ctx):
    order_id = await placed(client)
    inventory.reserve_inventory(ctx, order_id, Handover())  # counted the first capture
    assert begin(ctx, order_id, Step.CAPTURE_PAYMENT) is Next.RUN  # the second (max 2)
    assert begin(ctx, order_id, Step.CAPTURE_PAYMENT) is Next.STOP

    assert counted(db, order_id)[0] == "failed"
    reason = db.execute('SELECT failure_reason FROM "order" WHERE id = %s', (order_id,))
    assert reason.fetchone() == ("capture_payment crashed its worker 2 times (poison message)",)
    assert asked(ctx) == []


async def test_a_render_redelivered_after_a_crash_keeps_its_invoice_number(client, db, ctx):
    first, second = await placed(client), await placed(client)
    for order_id in (first, second):
        inventory.reserve_inventory(ctx, order_id)
        payments.capture_payment(ctx, order_id)
    # The first delivery numbered the invoice, then its worker died before the PDF was stored.
    decision, document = invoices.start_render(ctx, first)
    assert decision is Next.RUN
    assert document is not None
    attempts = db.execute('SELECT step_attempts FROM "order" WHERE id = %s', (first,)).fetchone()
    assert attempts == (1,)  # the delivery that crashed is counted

    assert invoices.render_invoice(ctx, second) is Next.RUN
    assert invoices.render_invoice(ctx, first) is Next.RUN  # the redelivery

    numbers = db.execute(
        'SELECT o.number, i.number FROM invoice i JOIN "order" o ON o.id = i.order_id ORDER BY o.number'
    ).fetchall()
    assert [invoice for _, invoice in numbers] == [1, 2]  # the first order kept number 1
    assert count(db, "invoice WHERE pdf IS NULL") == 0
    done = db.execute('SELECT status, step, step_attempts FROM "order" WHERE id = %s', (first,))
    assert done.fetchone() == ("completed", None, 0)  # complete: no step counts for it any more


async def test_a_step_that_keeps_crashing_its_worker_fails_the_order(client, db, ctx):
    order_id = await placed(client)
    # Two deliveries began and never finished (step_max_deliveries is 2); the third gives up.
    assert begin(ctx, order_id, Step.RESERVE_INVENTORY) is Next.RUN
    assert begin(ctx, order_id, Step.RESERVE_INVENTORY) is Next.RUN
    assert begin(ctx, order_id, Step.RESERVE_INVENTORY) is Next.STOP

    failed = db.execute('SELECT status, failed_step, failure_reason FROM "order"').fetchone()
    assert failed == (
        "failed",
        "reserve_inventory",
        "reserve_inventory crashed its worker 2 times (poison message)",
    )
    assert inventory.reserve_inventory(ctx, order_id) is Next.STOP
    assert stock(db, "MUG-001") == (500, 0)


async def test_out_of_stock_cancels_and_the_void_is_asked_once(client, db, ctx):
    order_id = await placed(client, lines=[{"sku": "POSTER-LTD", "quantity": 11}])

    assert inventory.reserve_inventory(ctx, order_id) is Next.STOP
    assert status_of(db, str(order_id)) == "cancelled"
    outbox = db.execute("SELECT kind, payload FROM outbox ORDER BY id").fetchall()
    assert [kind for kind, _ in outbox] == ["run_step", "void_payment"]
    assert outbox[1][1]["order_id"] == str(order_id)

    payments.void_payment(ctx, order_id)
    payments.void_payment(ctx, order_id)  # redelivered
    assert asked(ctx) == ["void"]
    assert db.execute("SELECT status FROM payment").fetchone() == ("voided",)
    assert event_types(db, str(order_id))[-2:] == ["order.cancelled", "payment.voided"]
    assert stock(db, "POSTER-LTD") == (10, 0)


class MeetsAtTheVoid(SandboxGateway):
    """Holds each void until two have come: both deliveries got past the payment's status."""

    def __init__(self) -> None:
        super().__init__()
        self.both_here = threading.Barrier(2, timeout=10)

    def void(self, authorization_id: str, idempotency_key: str) -> None:
        super().void(authorization_id, idempotency_key)
        self.both_here.wait()


async def test_two_deliveries_of_a_void_at_once_record_it_once(client, db, ctx):
    order_id = await placed(client, lines=[{"sku": "POSTER-LTD", "quantity": 11}])
    inventory.reserve_inventory(ctx, order_id)
    ctx = dataclasses.replace(ctx, gateway=MeetsAtTheVoid())

    with ThreadPoolExecutor(2) as pool:
        for done in [pool.submit(payments.void_payment, ctx, order_id) for _ in range(2)]:
            done.result(timeout=20)

    assert asked(ctx) == ["void", "void"]  # the gateway's idempotency key makes them one
    assert db.execute("SELECT status FROM payment").fetchone() == ("voided",)
    assert event_types(db, str(order_id))[-2:] == ["order.cancelled", "payment.voided"]


async def test_a_declined_capture_cancels_and_gives_the_stock_back(client, db, ctx):
    order_id = await placed(client, payment_token="tok_chargeCustomerFail")
    inventory.reserve_inventory(ctx, order_id)
    assert stock(db, "MUG-001") == (500, 2)

    assert payments.capture_payment(ctx, order_id) is Next.STOP
    assert status_of(db, str(order_id)) == "cancelled"
    assert stock(db, "MUG-001") == (500, 0)
    assert count(db, "stock_reservation") == 0
    assert db.execute("SELECT status FROM payment").fetchone() == ("declined",)
    cancelled = db.execute("SELECT data FROM order_event WHERE type = 'order.cancelled'").fetchone()
    assert cancelled[0]["reason"] == "capture_declined"
    assert cancelled[0]["decline_code"] == "card_declined"
    assert invoices.render_invoice(ctx, order_id) is Next.STOP
