"""Settings of the worker side (workers and relay): the shared ones (orders.config) and what only
the workers read."""

from typing import Literal

from orders.config import Settings


class WorkerSettings(Settings):
    db_pool_size: int = 5  # a prefork child runs one task at a time
    db_statement_timeout_ms: int = 0  # a step is bounded by the task time limits below
    payment_read_timeout_s: float = 5.0  # no customer waits on a capture

    warehouse_url: str | None = None
    warehouse_timeout_s: float = 5.0

    # A broker that goes silent is noticed within two heartbeats (workers and relay), and no
    # publish waits longer than this for its confirm.
    broker_heartbeat_s: int = 30
    broker_confirm_timeout_s: float = 10.0

    # Retries of a step on a transient fault (gateway timeout, 5xx): backoff with jitter.
    step_max_retries: int = 5
    step_retry_backoff_max_s: int = 60
    # A message delivered this often for one step is a poison message: the order is failed.
    step_max_deliveries: int = 5
    # Below RabbitMQ's consumer_timeout (30 min by default), so the broker never drops a worker.
    task_soft_time_limit_s: int = 120
    task_time_limit_s: int = 180
    # WeasyPrint's memory grows with use; a child process is replaced after this much work.
    worker_max_tasks_per_child: int = 500
    worker_max_memory_per_child_kb: int = 400_000
    # The worker's main process serves its children's metrics here (0: off); see observability.
    worker_metrics_port: int = 0

    relay_batch_size: int = 100
    relay_poll_interval_s: float = 1.0
    relay_max_backoff_s: float = 10.0
    # Publish steps with their priority (orders on their way first); off: first in, first out.
    step_priorities: bool = True
    # An order on its way with no progress and no message in flight for this long has stalled:
    # the relay enqueues its step again (and notes `order.stalled` on its timeline).
    stall_after_s: float = 300.0
    stall_check_interval_s: float = 10.0

    # Outbound webhooks.
    webhook_connect_timeout_s: float = 3.0
    webhook_read_timeout_s: float = 10.0
    webhook_retry_horizon_hours: float = 72.0  # Stripe's 3 days
    webhook_backoff_base_s: float = 5.0
    webhook_backoff_max_s: float = 6 * 3600.0
    # Requests open at once to one endpoint: each is a batch sending one delivery at a time.
    webhook_max_in_flight_per_endpoint: int = 4
    # Deliveries to one endpoint in one message (the relay groups them), and how long a batch
    # may go on starting requests (the rest are due again at once); with the record's retries,
    # within the task's soft time limit.
    webhook_batch_size: int = 20
    webhook_batch_budget_s: float = 40.0
    webhook_disable_after_failures: int = 10  # consecutive failed deliveries
    webhook_attempt_retention_days: int = 30
    webhook_sweep_interval_s: float = 1.0
    # New deliveries wait at most this long after the last sweep, so that in a burst those to one
    # endpoint go out together (see fulfillment.relay).
    webhook_linger_s: float = 0.2
    # An attempt that went out is recorded with retries for this long if the database fails.
    webhook_record_retry_s: float = 60.0

    # Bulk stock imports: rows per batch (each its own short transaction), how long one task
    # imports before it hands on to the next message, and how many skipped rows are kept.
    import_batch_rows: int = 10_000
    import_slice_s: float = 20.0
    import_max_error_rows: int = 100_000

    shop_name: str = "Reference Shop Ltd"
    shop_address: str = "1 Market Street, London EC1A 1AA, United Kingdom"
    shop_vat_id: str = "GB123456789"
    shop_email: str = "billing@shop.example"
    # Invoices and credit notes: paper size, and the locale that writes their amounts.
    invoice_paper: Literal["A4", "Letter"] = "A4"
    invoice_locale: str = "en_GB"

    # Fault injection for the poison-message test: a step of an order holding this SKU kills its
    # worker process. Empty (off) everywhere else.
    crash_on_sku: str = ""


settings = WorkerSettings()
