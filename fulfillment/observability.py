"""The worker side of logs and metrics.

Logs: the request id and order id from the message's headers are put in context before each
task, so worker lines carry the same ids as the API's. Metrics: Celery's prefork children are
separate processes, so they use prometheus-client's multiprocess mode (one file per process in
PROMETHEUS_MULTIPROC_DIR) and the worker's main process serves them all on WORKER_METRICS_PORT;
one scrape target per worker, whatever its concurrency. (Per-child HTTP exporters would need a
port per child, and a child recycled by max-tasks-per-child would lose its counts.)
"""

import logging
import os
import time
from typing import Any

from celery import signals
from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess, start_http_server

from fulfillment.config import settings
from orders import context
from orders.context import configure_logging
from orders.messages import TASKS

log = logging.getLogger(__name__)

TASK_SECONDS = Histogram(
    "fulfillment_task_duration_seconds",
    "Celery task run time",
    ["task"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
TASK_OUTCOMES = Counter(
    "fulfillment_task_outcomes_total", "Celery task outcomes", ["task", "outcome"]
)
_started: dict[str, float] = {}


def correlation_headers() -> dict[str, str]:
    """What travels with a message: the ids in context now."""
    headers = {"request_id": context.request_id.get(), "order_id": context.order_id.get()}
    return {k: v for k, v in headers.items() if v}


@signals.setup_logging.connect
def _setup_logging(**_: Any) -> None:
    configure_logging(settings.log_format)


TAKES_ORDER_ID = frozenset(task.name for task in TASKS if task.takes_order_id)


@signals.task_prerun.connect
def _before(task_id: str, task: Any, args: Any = (), **_: Any) -> None:
    _started[task_id] = time.perf_counter()
    headers = getattr(task.request, "headers", None) or {}
    context.request_id.set(getattr(task.request, "request_id", None) or headers.get("request_id"))
    order = getattr(task.request, "order_id", None) or headers.get("order_id")
    by_order_id = args and task.name in TAKES_ORDER_ID
    context.order_id.set(order or (args[0] if by_order_id else None))


@signals.task_postrun.connect
def _after(task_id: str, task: Any, state: str | None = None, **_: Any) -> None:
    started = _started.pop(task_id, None)
    if started is not None:
        TASK_SECONDS.labels(task.name).observe(time.perf_counter() - started)
    TASK_OUTCOMES.labels(task.name, (state or "unknown").lower()).inc()
    context.request_id.set(None)
    context.order_id.set(None)


@signals.worker_ready.connect
def _serve_metrics(**_: Any) -> None:
    if not settings.worker_metrics_port or not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    start_http_server(settings.worker_metrics_port, addr="127.0.0.1", registry=registry)
    log.info("worker metrics on http://127.0.0.1:%d/metrics", settings.worker_metrics_port)


@signals.worker_process_shutdown.connect
def _child_gone(pid: int | None = None, **_: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid or os.getpid())
