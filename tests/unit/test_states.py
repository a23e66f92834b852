"""The order state machine: which step runs, skips or stops for which status."""

import itertools

import pytest

from orders.models import OrderStatus
from orders.states import (
    STATUS_AFTER,
    STATUS_BEFORE,
    STEPS,
    WAITING_FOR,
    Next,
    Step,
    at_rest,
    next_for,
    next_step,
)


@pytest.mark.parametrize("step", STEPS)
def test_each_step_runs_from_its_status_and_leads_to_the_next_ones(step):
    assert next_for(STATUS_BEFORE[step], step) is Next.RUN
    assert next_for(STATUS_AFTER[step], step) is Next.DONE


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("status", [OrderStatus.CANCELLED, OrderStatus.FAILED])
def test_cancelled_and_failed_orders_stop_every_step(step, status):
    assert next_for(status, step) is Next.STOP


def test_a_redelivered_early_step_is_done_and_a_too_early_step_stops():
    assert next_for(OrderStatus.COMPLETED, Step.RESERVE_INVENTORY) is Next.DONE
    assert next_for(OrderStatus.PENDING, Step.RENDER_INVOICE) is Next.STOP


def test_each_step_is_followed_by_the_next_and_the_last_by_none():
    assert [next_step(step) for step in STEPS] == [
        Step.CAPTURE_PAYMENT,
        Step.RENDER_INVOICE,
        Step.NOTIFY,
        None,
    ]


def test_an_order_on_its_way_waits_for_one_step_and_a_settled_one_for_none():
    assert WAITING_FOR == {
        OrderStatus.PENDING: Step.RESERVE_INVENTORY,
        OrderStatus.RESERVED: Step.CAPTURE_PAYMENT,
        OrderStatus.PAID: Step.RENDER_INVOICE,
        OrderStatus.INVOICED: Step.NOTIFY,
    }


def test_each_step_leaves_the_status_the_next_one_needs():
    for step, following in itertools.pairwise(STEPS):
        assert STATUS_AFTER[step] == STATUS_BEFORE[following]


@pytest.mark.parametrize(
    ("status", "ships", "shipped", "rests"),
    [
        (OrderStatus.PAID, False, False, False),  # on its way
        (OrderStatus.COMPLETED, False, False, True),  # no warehouse: nothing more comes
        (OrderStatus.COMPLETED, True, False, False),  # `order.shipped` is to come
        (OrderStatus.COMPLETED, True, True, True),
        (OrderStatus.PARTIALLY_REFUNDED, True, False, False),  # the rest still ships
        (OrderStatus.REFUNDED, True, False, True),  # nothing left to ship
        (OrderStatus.CANCELLED, True, False, True),
    ],
)
def test_an_order_a_warehouse_ships_is_at_rest_once_shipped(status, ships, shipped, rests):
    assert at_rest(status, ships, shipped) is rests
