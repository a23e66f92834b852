"""Thin Celery tasks over the steps: parse the id, call the step, translate the outcome. Names and
queues come from the messaging contract (orders.messages)."""

import functools
import logging
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import httpcore  # noqa: F401  (see below)
import httpx
import psycopg  # noqa: F401
from celery import Task
from sqlalchemy.exc import OperationalError

from fulfillment import (
    deliveries,
    inventory,
    invoices,
    notify,
    payments,
    refunds,
    stock_import,
    warehouse,
)
from fulfillment.celery_app import app
from fulfillment.config import settings
from fulfillment.runner import Context, Handover, delivery_finished, mark_failed
from orders import messages
from orders.db import make_engine, make_sessionmaker
from orders.payments import GatewayUnavailable, make_settler
from orders.states import CONTINUES_IN_TASK, IN_THE_SAME_COMMIT, Next, Step, next_step

log = logging.getLogger(__name__)


# psycopg and httpcore are imported above, in the worker's main process before its pool forks,
# though nothing here names them: SQLAlchemy and httpx import them lazily, at a child's first
# task, and each child (again after every recycle, WORKER_MAX_TASKS_PER_CHILD) spent ~0.4 s of
# CPU on it, ~13 % of a step child's samples in a 200-order burst. Imported once, they are shared.


@functools.cache
def context() -> Context:
    """Built on first use, so each prefork child opens its own connections after the fork."""
    engine = make_engine(settings, "orders-worker")
    return Context(make_sessionmaker(engine), make_settler(settings), settings, httpx.Client())


MAX_RETRIES = settings.step_max_retries


def retried(*errors: type[Exception], max_retries: int | None) -> dict[str, Any]:
    """Celery retries on these errors, with exponential backoff and jitter."""
    return {
        "autoretry_for": errors,
        "max_retries": max_retries,
        "retry_backoff": True,
        "retry_backoff_max": settings.step_retry_backoff_max_s,
        "retry_jitter": True,
    }


class StepTask(Task):  # type: ignore[misc]
    """Retries transient faults with exponential backoff and jitter; gives up by failing the order."""

    step: Step
    autoretry_for = (GatewayUnavailable, warehouse.WarehouseUnavailable, OperationalError)
    max_retries = MAX_RETRIES
    retry_backoff = True
    retry_backoff_max = settings.step_retry_backoff_max_s
    retry_jitter = True

    def on_retry(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        delivery_finished(context(), uuid.UUID(args[0]), RUNNING.get() or self.step)

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        step = RUNNING.get() or self.step
        log.error("%s gave up on order %s in %s: %r", self.name, args[0], step, exc)
        mark_failed(context(), uuid.UUID(args[0]), step, f"{type(exc).__name__}: {exc}")


STEP_FUNCTIONS: dict[Step, Callable[[Context, uuid.UUID, Handover], Next]] = {
    Step.RESERVE_INVENTORY: inventory.reserve_inventory,
    Step.CAPTURE_PAYMENT: payments.capture_payment,
    Step.RENDER_INVOICE: invoices.render_invoice,
    Step.NOTIFY: notify.notify,
}
# The step a task is running: a retry or a failure is the step's that raised, which may be one
# that continued in the task after the step the task is named for.
RUNNING: ContextVar[Step | None] = ContextVar("running_step", default=None)


def run_steps(ctx: Context, first: Step, order_id: str) -> str:
    """`first`, then each step that continues in the task (CONTINUES_IN_TASK) after one that ran
    or found itself done (a redelivery). 'run', 'done' (the last was a redelivery) or 'stop'."""
    step: Step | None = first
    outcome = Next.RUN
    handover = Handover()
    while step is not None:
        RUNNING.set(step)
        outcome = STEP_FUNCTIONS[step](ctx, uuid.UUID(order_id), handover)
        following = next_step(step)
        if outcome is Next.RUN and following in IN_THE_SAME_COMMIT:
            following = next_step(following)  # it was committed with the step that ran
        step = following if outcome is not Next.STOP and following in CONTINUES_IN_TASK else None
    return outcome.value


@app.task(base=StepTask, name=messages.RESERVE_INVENTORY.name, step=Step.RESERVE_INVENTORY)
def reserve_inventory(order_id: str) -> str:
    return run_steps(context(), Step.RESERVE_INVENTORY, order_id)


@app.task(base=StepTask, name=messages.CAPTURE_PAYMENT.name, step=Step.CAPTURE_PAYMENT)
def capture_payment(order_id: str) -> str:
    return run_steps(context(), Step.CAPTURE_PAYMENT, order_id)


@app.task(base=StepTask, name=messages.RENDER_INVOICE.name, step=Step.RENDER_INVOICE)
def render_invoice(order_id: str) -> str:
    return run_steps(context(), Step.RENDER_INVOICE, order_id)


@app.task(base=StepTask, name=messages.NOTIFY.name, step=Step.NOTIFY)
def notify_(order_id: str) -> str:
    return run_steps(context(), Step.NOTIFY, order_id)


@app.task(
    name=messages.VOID_PAYMENT.name,
    # A hold on a customer's card must be released: keep trying, backing off.
    **retried(GatewayUnavailable, OperationalError, max_retries=None),
)
def void_payment(order_id: str) -> None:
    payments.void_payment(context(), uuid.UUID(order_id))


@app.task(
    name=messages.VOID_AUTHORIZATION.name,
    **retried(GatewayUnavailable, max_retries=None),  # a hold on a card must be released
)
def void_authorization(order_id: str, authorization_id: str) -> None:
    payments.void_authorization(context(), uuid.UUID(order_id), authorization_id)


@app.task(
    name=messages.REFUND_PAYMENT.name,
    # Money owed to a customer goes back: keep trying, backing off.
    **retried(GatewayUnavailable, OperationalError, max_retries=None),
)
def refund_payment(cancellation_id: str) -> None:
    refunds.refund_payment(context(), uuid.UUID(cancellation_id))


@app.task(
    name=messages.RENDER_CREDIT_NOTE.name,
    **retried(OperationalError, max_retries=MAX_RETRIES),
)
def render_credit_note(cancellation_id: str) -> None:
    refunds.render_credit_note(context(), uuid.UUID(cancellation_id))


@app.task(
    name=messages.SYNC_WAREHOUSE.name,
    **retried(warehouse.WarehouseUnavailable, OperationalError, max_retries=MAX_RETRIES * 2),
)
def sync_warehouse(order_id: str) -> None:
    warehouse.sync_warehouse(context(), uuid.UUID(order_id))


@app.task(
    name=messages.SHIP_ORDER.name,
    **retried(warehouse.WarehouseUnavailable, OperationalError, max_retries=MAX_RETRIES * 2),
)
def ship_order(order_id: str) -> None:
    warehouse.ship_order(context(), uuid.UUID(order_id))


@app.task(
    name=messages.DELIVER_WEBHOOKS.name,
    **retried(OperationalError, max_retries=MAX_RETRIES),  # the database, before sending
)
def deliver_webhooks(*delivery_ids: str) -> None:
    """Deliveries to one endpoint, sent one after another. A receiver's failures are not retried
    here: the next attempt is a time in the database that the relay's sweep reads."""
    ctx = context()
    ids = [uuid.UUID(delivery_id) for delivery_id in delivery_ids]
    deliveries.deliver(ctx.sessions, ctx.http, settings, ids)


@app.task(
    name=messages.IMPORT_STOCK.name,
    **retried(OperationalError, max_retries=MAX_RETRIES),  # it resumes after the last batch
)
def import_stock(job_id: str) -> str:
    return stock_import.import_stock(context(), uuid.UUID(job_id)).value
