"""The messaging contract against the Celery tasks that implement it."""

import inspect

import pytest

from fulfillment.celery_app import app
from fulfillment.tasks import STEP_FUNCTIONS  # noqa: F401  (registers the tasks)
from orders.messages import TASKS, Task


@pytest.mark.parametrize("task", TASKS, ids=lambda task: task.name)
def test_each_task_is_registered_and_says_whether_it_is_called_with_an_order_id(task: Task):
    first = next(iter(inspect.signature(app.tasks[task.name].run).parameters))
    assert task.takes_order_id == (first == "order_id"), first
