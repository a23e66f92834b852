"""The order's life after checkout: which step moves it from which status to which. Plain Python,
shared by the web side (retry from a failed step) and the worker side (run a step)."""

from enum import StrEnum

from orders.models import OrderStatus


class Step(StrEnum):
    RESERVE_INVENTORY = "reserve_inventory"
    CAPTURE_PAYMENT = "capture_payment"
    RENDER_INVOICE = "render_invoice"
    NOTIFY = "notify"


STEPS = tuple(Step)
# The status an order must have for a step to run, and the status the step leaves it in.
STATUS_BEFORE = {
    Step.RESERVE_INVENTORY: OrderStatus.PENDING,
    Step.CAPTURE_PAYMENT: OrderStatus.RESERVED,
    Step.RENDER_INVOICE: OrderStatus.PAID,
    Step.NOTIFY: OrderStatus.INVOICED,
}
STATUS_AFTER = {
    Step.RESERVE_INVENTORY: OrderStatus.RESERVED,
    Step.CAPTURE_PAYMENT: OrderStatus.PAID,
    Step.RENDER_INVOICE: OrderStatus.INVOICED,
    Step.NOTIFY: OrderStatus.COMPLETED,
}
EVENT_AFTER = {
    Step.RESERVE_INVENTORY: "order.reserved",
    Step.CAPTURE_PAYMENT: "order.paid",
    Step.RENDER_INVOICE: "order.invoiced",
    Step.NOTIFY: "order.completed",
}
PROGRESS = (
    OrderStatus.PENDING,
    OrderStatus.RESERVED,
    OrderStatus.PAID,
    OrderStatus.INVOICED,
    OrderStatus.COMPLETED,
)


# Statuses in which nothing moves an order on its own (an operator may still: a retry, a refund),
# but a shipment (`at_rest`).
AT_REST = frozenset(
    {
        OrderStatus.COMPLETED,
        OrderStatus.CANCELLED,
        OrderStatus.FAILED,
        OrderStatus.REFUNDED,
        OrderStatus.PARTIALLY_REFUNDED,
    }
)
# A completed order ships; so does one with some lines refunded (the rest still goes out).
SHIPPABLE = frozenset({OrderStatus.COMPLETED, OrderStatus.PARTIALLY_REFUNDED})


def at_rest(status: OrderStatus, ships: bool, shipped: bool) -> bool:
    """Nothing more will happen to the order on its own: its status is at rest, and no shipment
    is to come (a warehouse ships it: `order.ships`). The storefront's live stream ends here."""
    return status in AT_REST and not (ships and not shipped and status in SHIPPABLE)


class Next(StrEnum):
    RUN = "run"  # the step's effect is not there yet
    DONE = "done"  # a redelivery: the step already happened, the chain goes on
    STOP = "stop"  # cancelled or failed: the rest of the chain must not run


def next_for(status: OrderStatus, step: Step) -> Next:
    if status == STATUS_BEFORE[step]:
        return Next.RUN
    if status in PROGRESS and PROGRESS.index(status) > PROGRESS.index(STATUS_BEFORE[step]):
        return Next.DONE
    return Next.STOP


# Steps that run in the task of the step before them, right after its commit, rather than as a
# message of their own: a message costs the relay, the broker and a worker more CPU than these
# steps' own work. Capture follows reserve on the steps queue; notify, database work only, follows
# the render on the invoices queue. The message that started the task is acknowledged after the
# last step it ran, so a worker lost in between gets it redelivered: the step before finds itself
# done and the chain goes on from the step that did not commit.
CONTINUES_IN_TASK = frozenset({Step.CAPTURE_PAYMENT, Step.NOTIFY})
# Of those, the steps with database work only, done in the very transaction that commits the step
# before them: notify completes the order in the render's commit. One transaction where there
# were three (notify's delivery count, then its own commit), and its status and event still
# recorded apart. A redelivered task whose first step finds itself done runs them on their own.
IN_THE_SAME_COMMIT = frozenset({Step.NOTIFY})


def next_step(step: Step) -> Step | None:
    """The step that follows `step` in the chain; None after the last."""
    following = STEPS.index(step) + 1
    return STEPS[following] if following < len(STEPS) else None


# The step an order waits for in each status on the way to `completed`.
WAITING_FOR = {status: step for step, status in STATUS_BEFORE.items()}
