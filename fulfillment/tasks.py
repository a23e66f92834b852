"""Thin Celery tasks over fulfillment.steps: parse the id, call the step, translate the outcome."""

import functools
import logging
import uuid
from typing import Any

import httpx
from celery import Task
from celery.exceptions import Ignore
from sqlalchemy.exc import OperationalError

from fulfillment import deliveries, steps
from fulfillment.celery_app import app
from fulfillment.config import settings
from fulfillment.db import make_engine, make_sessionmaker
from fulfillment.gateway import GatewayUnavailable, make_gateway
from orders.states import Next, Step

log = logging.getLogger(__name__)


@functools.cache
def context() -> steps.Context:
    """Built on first use, so each prefork child opens its own connections after the fork."""
    engine = make_engine(settings, "orders-worker")
    return steps.Context(
        make_sessionmaker(engine), make_gateway(settings), settings, httpx.Client()
    )


class StepTask(Task):  # type: ignore[misc]
    """Retries transient faults with exponential backoff and jitter; gives up by failing the order."""

    step: Step
    autoretry_for = (GatewayUnavailable, steps.WarehouseUnavailable, OperationalError)
    max_retries = settings.step_max_retries
    retry_backoff = True
    retry_backoff_max = settings.step_retry_backoff_max_s
    retry_jitter = True

    def on_retry(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        steps.delivery_finished(context(), uuid.UUID(args[0]), self.step)

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        log.error("%s gave up on order %s: %r", self.name, args[0], exc)
        steps.mark_failed(context(), uuid.UUID(args[0]), self.step, f"{type(exc).__name__}: {exc}")


def _run(step: Any, order_id: str) -> str:
    outcome: Next = step(context(), uuid.UUID(order_id))
    if outcome is Next.STOP:
        raise Ignore()  # cancelled or failed: the rest of the chain must not run
    return outcome.value


@app.task(base=StepTask, name="fulfillment.reserve_inventory", step=Step.RESERVE_INVENTORY)
def reserve_inventory(order_id: str) -> str:
    return _run(steps.reserve_inventory, order_id)


@app.task(base=StepTask, name="fulfillment.capture_payment", step=Step.CAPTURE_PAYMENT)
def capture_payment(order_id: str) -> str:
    return _run(steps.capture_payment, order_id)


@app.task(base=StepTask, name="fulfillment.render_invoice", step=Step.RENDER_INVOICE)
def render_invoice(order_id: str) -> str:
    return _run(steps.render_invoice, order_id)


@app.task(base=StepTask, name="fulfillment.notify", step=Step.NOTIFY)
def notify(order_id: str) -> str:
    return _run(steps.notify, order_id)


@app.task(
    name="fulfillment.void_payment",
    autoretry_for=(GatewayUnavailable, OperationalError),
    max_retries=None,  # a hold on a customer's card must be released; keep trying, backing off
    retry_backoff=True,
    retry_backoff_max=settings.step_retry_backoff_max_s,
    retry_jitter=True,
)
def void_payment(order_id: str) -> None:
    steps.void_payment(context(), uuid.UUID(order_id))


@app.task(
    name="fulfillment.sync_warehouse",
    autoretry_for=(steps.WarehouseUnavailable, OperationalError),
    max_retries=settings.step_max_retries * 2,
    retry_backoff=True,
    retry_backoff_max=settings.step_retry_backoff_max_s,
    retry_jitter=True,
)
def sync_warehouse(order_id: str) -> None:
    steps.sync_reservation_to_warehouse(context(), uuid.UUID(order_id))


@app.task(name="fulfillment.deliver_webhook")
def deliver_webhook(delivery_id: str) -> None:
    """Retries are not Celery's: the next attempt is a time in the database that the sweep reads."""
    ctx = context()
    deliveries.deliver(ctx.sessions, ctx.http, settings, uuid.UUID(delivery_id))
