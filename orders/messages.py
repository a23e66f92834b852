"""The messaging contract: every queue, every Celery task, and every kind of outbox message with
its payload. Both sides import it: checkout, the operators' API and the steps `enqueue` messages;
the relay publishes them; Celery's queues and routes are built from it. Messages carry ids, never
objects: the task reads the rows again."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import cache
from typing import Any, ClassVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from sqlalchemy import Insert, insert
from sqlmodel import Session

from orders import context
from orders.models import Outbox, table, utcnow
from orders.states import Step


class Queue(StrEnum):
    STEPS = "steps"  # the chain's steps, compensations, the warehouse: short, by priority
    INVOICES = "invoices"  # rendering: CPU-bound, so processes of its own in production
    WEBHOOKS = "webhooks"  # deliveries: they wait on receivers, never behind a render
    IMPORTS = "imports"  # bulk catalog imports: long, in slices, never ahead of an order's step


QUEUES = tuple(Queue)
# The steps queue is a priority queue: work for orders already on their way goes before the
# first step of new ones, so a burst of new orders does not hold back those in flight.
MAX_PRIORITY = 9


@dataclass(frozen=True)
class Task:
    name: str
    queue: Queue
    priority: int = 0
    # Its first argument is an order's id (the workers' logs fall back on it for the order id).
    takes_order_id: bool = True


RESERVE_INVENTORY = Task("fulfillment.reserve_inventory", Queue.STEPS, priority=0)
CAPTURE_PAYMENT = Task("fulfillment.capture_payment", Queue.STEPS, priority=5)
RENDER_INVOICE = Task("fulfillment.render_invoice", Queue.INVOICES)
NOTIFY = Task("fulfillment.notify", Queue.STEPS, priority=MAX_PRIORITY)
VOID_PAYMENT = Task("fulfillment.void_payment", Queue.STEPS, priority=MAX_PRIORITY)
VOID_AUTHORIZATION = Task("fulfillment.void_authorization", Queue.STEPS, priority=MAX_PRIORITY)
REFUND_PAYMENT = Task(
    "fulfillment.refund_payment", Queue.STEPS, priority=MAX_PRIORITY, takes_order_id=False
)
RENDER_CREDIT_NOTE = Task("fulfillment.render_credit_note", Queue.INVOICES, takes_order_id=False)
SYNC_WAREHOUSE = Task("fulfillment.sync_warehouse", Queue.STEPS, priority=5)
SHIP_ORDER = Task("fulfillment.ship_order", Queue.STEPS, priority=MAX_PRIORITY)
# Called with the ids of deliveries to one endpoint, sent in a batch.
DELIVER_WEBHOOKS = Task("fulfillment.deliver_webhooks", Queue.WEBHOOKS, takes_order_id=False)
IMPORT_STOCK = Task("fulfillment.import_stock", Queue.IMPORTS, takes_order_id=False)

STEP_TASKS = {
    Step.RESERVE_INVENTORY: RESERVE_INVENTORY,
    Step.CAPTURE_PAYMENT: CAPTURE_PAYMENT,
    Step.RENDER_INVOICE: RENDER_INVOICE,
    Step.NOTIFY: NOTIFY,
}
TASKS = (
    *STEP_TASKS.values(),
    VOID_PAYMENT,
    VOID_AUTHORIZATION,
    REFUND_PAYMENT,
    RENDER_CREDIT_NOTE,
    SYNC_WAREHOUSE,
    SHIP_ORDER,
    DELIVER_WEBHOOKS,
    IMPORT_STOCK,
)


class Message(BaseModel):
    """An outbox row's payload, published as one task. The request id rides along, for the
    workers' logs."""

    model_config = ConfigDict(frozen=True)
    kind: ClassVar[str]
    runs: ClassVar[Task | None] = None  # the task it is published as, if always the same

    request_id: str | None = Field(default_factory=lambda: context.request_id.get())

    @property
    def task(self) -> Task:
        assert self.runs is not None
        return self.runs

    def about(self) -> uuid.UUID | None:
        """The order it concerns, if any: the outbox row's `order_id`, the logs' `order_id`."""
        return None

    def task_args(self) -> tuple[str, ...]:
        """What the task is called with: ids, never objects."""
        raise NotImplementedError


class OrderMessage(Message):
    """About one order, whose id the task is called with."""

    order_id: uuid.UUID

    def about(self) -> uuid.UUID | None:
        return self.order_id

    def task_args(self) -> tuple[str, ...]:
        return (str(self.order_id),)


class RunStep(OrderMessage):
    """Run one step of the chain. A step's commit enqueues the next step, in the same
    transaction: the chain moves through the outbox, so no committed step is left without its
    successor, whatever the broker does."""

    kind = "run_step"
    # `from_step`: rows written before steps continued through the outbox ran the chain from it.
    step: Step = Field(
        default=Step.RESERVE_INVENTORY, validation_alias=AliasChoices("step", "from_step")
    )

    @property
    def task(self) -> Task:
        return STEP_TASKS[self.step]


class VoidPayment(OrderMessage):
    """Release a cancelled order's card authorization."""

    kind = "void_payment"
    runs = VOID_PAYMENT


class VoidAuthorization(OrderMessage):
    """Release an authorization that no order holds: the card was authorized at checkout, then
    the order could not be written. `order_id` is the id the checkout had reserved."""

    kind = "void_authorization"
    runs = VOID_AUTHORIZATION
    authorization_id: str

    def task_args(self) -> tuple[str, ...]:
        return (str(self.order_id), self.authorization_id)


class RefundPayment(OrderMessage):
    """Give back what an operator's cancellation refunds, then record it and number its credit
    note."""

    kind = "refund_payment"
    runs = REFUND_PAYMENT
    cancellation_id: uuid.UUID

    def task_args(self) -> tuple[str, ...]:
        return (str(self.cancellation_id),)


class RenderCreditNote(OrderMessage):
    """Render a numbered credit note's PDF."""

    kind = "render_credit_note"
    runs = RENDER_CREDIT_NOTE
    cancellation_id: uuid.UUID

    def task_args(self) -> tuple[str, ...]:
        return (str(self.cancellation_id),)


class SyncWarehouse(OrderMessage):
    """Tell the warehouse what the order reserved."""

    kind = "sync_warehouse"
    runs = SYNC_WAREHOUSE


class ShipOrder(OrderMessage):
    """Ask the warehouse to ship a completed order; its confirmation consumes the reservation."""

    kind = "ship_order"
    runs = SHIP_ORDER


class DeliverWebhooks(Message):
    """The event's webhook deliveries are due. No task of its own: the deliveries are rows of
    their own, so this row only wakes the relay's sweep, which sends what is due (these and any
    retry) as DELIVER_WEBHOOKS, a task per endpoint and batch."""

    kind = "deliver_webhooks"
    event_id: int
    order_id: uuid.UUID | None = None  # None for the shop's own events (catalog.imported)

    def about(self) -> uuid.UUID | None:
        return self.order_id


class ImportStock(Message):
    """Import the next batches of an uploaded stock file; each slice of batches enqueues the
    next in its last batch's transaction."""

    kind = "import_stock"
    runs = IMPORT_STOCK
    job_id: uuid.UUID

    def task_args(self) -> tuple[str, ...]:
        return (str(self.job_id),)


MESSAGES: tuple[type[Message], ...] = (
    RunStep,
    VoidPayment,
    VoidAuthorization,
    RefundPayment,
    RenderCreditNote,
    SyncWarehouse,
    ShipOrder,
    DeliverWebhooks,
    ImportStock,
)
KINDS: dict[str, type[Message]] = {message.kind: message for message in MESSAGES}
KINDS["fulfil_order"] = RunStep


class UnknownMessage(ValueError):
    pass


def enqueue(session: Session, message: Message) -> None:
    """Write the outbox row in the caller's transaction: it commits with the change that causes
    it, and the relay publishes it after."""
    session.exec(_outbox_insert(), params=outbox_row(message, utcnow()))


@cache
def _outbox_insert() -> Insert:
    return insert(table(Outbox))


def outbox_row(message: Message, now: datetime) -> dict[str, Any]:
    return {
        "kind": message.kind,
        "order_id": message.about(),
        "payload": message.model_dump(mode="json"),
        "created_at": now,
    }


def parse(kind: str, payload: dict[str, Any]) -> Message:
    if kind not in KINDS:
        raise UnknownMessage(kind)
    return KINDS[kind].model_validate(payload)
