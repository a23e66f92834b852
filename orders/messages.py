"""The messaging contract: every queue, every Celery task, and every kind of outbox message with
its payload. Both sides import it: checkout, the operators' API and the steps `enqueue` messages;
the relay publishes them; Celery's queues and routes are built from it. Messages carry ids, never
objects: the task reads the rows again."""

import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import insert
from sqlmodel import Session

from orders import context
from orders.models import Outbox, table, utcnow
from orders.states import Step, steps_from


class Queue(StrEnum):
    ORDERS = "orders"  # the chain's steps, compensations, the warehouse sync: short
    INVOICES = "invoices"  # rendering: CPU-bound, so processes of its own in production
    WEBHOOKS = "webhooks"  # deliveries: they wait on receivers, never behind a render


QUEUES = tuple(Queue)


@dataclass(frozen=True)
class Task:
    name: str
    queue: Queue


RESERVE_INVENTORY = Task("fulfillment.reserve_inventory", Queue.ORDERS)
CAPTURE_PAYMENT = Task("fulfillment.capture_payment", Queue.ORDERS)
RENDER_INVOICE = Task("fulfillment.render_invoice", Queue.INVOICES)
NOTIFY = Task("fulfillment.notify", Queue.ORDERS)
VOID_PAYMENT = Task("fulfillment.void_payment", Queue.ORDERS)
SYNC_WAREHOUSE = Task("fulfillment.sync_warehouse", Queue.ORDERS)
DELIVER_WEBHOOK = Task("fulfillment.deliver_webhook", Queue.WEBHOOKS)

STEP_TASKS = {
    Step.RESERVE_INVENTORY: RESERVE_INVENTORY,
    Step.CAPTURE_PAYMENT: CAPTURE_PAYMENT,
    Step.RENDER_INVOICE: RENDER_INVOICE,
    Step.NOTIFY: NOTIFY,
}
TASKS = (*STEP_TASKS.values(), VOID_PAYMENT, SYNC_WAREHOUSE, DELIVER_WEBHOOK)


class Message(BaseModel):
    """An outbox row's payload: about one order. The request id rides along, for the workers'
    logs."""

    model_config = ConfigDict(frozen=True)
    kind: ClassVar[str]

    order_id: uuid.UUID
    request_id: str | None = Field(default_factory=lambda: context.request_id.get())


class FulfilOrder(Message):
    """The chain from `from_step` on: one task per step, each published when the one before
    succeeds."""

    kind = "fulfil_order"
    from_step: Step = Step.RESERVE_INVENTORY

    def tasks(self) -> tuple[Task, ...]:
        return tuple(STEP_TASKS[step] for step in steps_from(self.from_step))


class VoidPayment(Message):
    """Release a cancelled order's card authorization."""

    kind = "void_payment"
    task: ClassVar[Task] = VOID_PAYMENT


class SyncWarehouse(Message):
    """Tell the warehouse what the order reserved."""

    kind = "sync_warehouse"
    task: ClassVar[Task] = SYNC_WAREHOUSE


class DeliverWebhooks(Message):
    """Send the event's pending webhook deliveries: one task per delivery."""

    kind = "deliver_webhooks"
    task: ClassVar[Task] = DELIVER_WEBHOOK
    event_id: int


KINDS: dict[str, type[Message]] = {
    message.kind: message for message in (FulfilOrder, VoidPayment, SyncWarehouse, DeliverWebhooks)
}


class UnknownMessage(ValueError):
    pass


def enqueue(session: Session, message: Message) -> None:
    """Write the outbox row in the caller's transaction: it commits with the change that causes
    it, and the relay publishes it after."""
    session.exec(
        insert(table(Outbox)).values(
            kind=message.kind, payload=message.model_dump(mode="json"), created_at=utcnow()
        )
    )


def parse(kind: str, payload: dict[str, Any]) -> Message:
    if kind not in KINDS:
        raise UnknownMessage(kind)
    return KINDS[kind].model_validate(payload)
