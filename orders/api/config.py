"""Settings of the API process: the shared ones (orders.config) and what only the API reads."""

from datetime import timedelta

from pydantic import model_validator

from orders.checkout import CheckoutRules
from orders.config import Settings
from orders.idempotency import IdempotencyPolicy
from orders.pricing import OrderLimits

PLACEHOLDER_SECRET = "change-me"  # noqa: S105 - refused outside development and test


class ApiSettings(Settings):
    secret_key: str = PLACEHOLDER_SECRET
    ops_api_key: str = PLACEHOLDER_SECRET

    idempotency_retention_hours: int = 24
    idempotency_lock_timeout_s: int = 30
    idempotency_purge_interval_s: int = 600

    max_body_bytes: int = 64 * 1024
    max_order_lines: int = 50
    max_line_quantity: int = 100
    tax_rate_bps: int = 2_000
    order_retry_after_s: int = 2
    unavailable_retry_after_s: int = 5
    request_budget_ms: int = 500
    # A request that has not begun its answer by then gets 503 (above the gateway's own
    # connect + read timeouts, which a checkout may wait through).
    request_deadline_s: float = 8.0

    # The lighter background tiers.
    smtp_host: str = ""  # empty: no order-received email
    smtp_port: int = 25
    smtp_timeout_s: float = 5.0
    mail_from: str = "orders@shop.example"
    analytics_url: str = ""  # empty: no analytics pings
    background_max_in_flight: int = 1_000
    background_drain_timeout_s: float = 5.0
    max_image_bytes: int = 8 * 1024 * 1024
    image_sizes: str = "128,512,1024"  # longest side of each variant, in pixels
    image_workers: int = 2  # processes in the resize pool

    # Bulk stock imports (POST /ops/imports): the largest file taken (inflated), how long the
    # same file uploaded again answers with its first job, how long an abandoned spool file stays.
    import_max_bytes: int = 1024**3
    import_dedupe_hours: float = 24.0
    import_spool_retention_hours: float = 24.0

    webhook_secret_grace_hours: float = 24.0  # both secrets sign for this long after a rotation

    # /metrics without the operators' key, on a port of its own (0: only behind the key).
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    # /health/ready gives up on the database (and the broker) after this long.
    ready_timeout_s: float = 1.0

    # Live streams: a comment line this often when nothing happens (proxies close idle streams),
    # and how often they read when nothing wakes them (SQLite, or PostgreSQL's LISTEN lost).
    stream_heartbeat_s: float = 15.0
    stream_poll_s: float = 1.0
    # A stream ends after this long (the client comes back with Last-Event-ID, losing nothing):
    # connections spread again over the API processes, and a shutdown waits for none for long.
    stream_max_s: float = 300.0

    # How long a sign-in to the ops pages lasts.
    ops_session_hours: float = 8.0

    # Allocations between two young-generation collections (CPython's default: 700).
    gc_gen0_threshold: int = 10_000

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> "ApiSettings":
        if self.environment == "production":
            for name in ("secret_key", "ops_api_key"):
                if getattr(self, name) == PLACEHOLDER_SECRET:
                    raise ValueError(f"{name.upper()} must be set to a real secret in production")
        return self

    def checkout_rules(self) -> CheckoutRules:
        return CheckoutRules(
            limits=OrderLimits(self.max_order_lines, self.max_line_quantity),
            tax_rate_bps=self.tax_rate_bps,
            idempotency=self.idempotency_policy(),
            secret_key=self.secret_key,
        )

    def idempotency_policy(self) -> IdempotencyPolicy:
        return IdempotencyPolicy(
            retention=timedelta(hours=self.idempotency_retention_hours),
            lock_timeout=timedelta(seconds=self.idempotency_lock_timeout_s),
        )


settings = ApiSettings()
