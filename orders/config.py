"""Settings of the web side, read from the environment (and `.env`)."""

from typing import Literal

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRET = "change-me"  # noqa: S105 - refused outside development and test


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    secret_key: str = PLACEHOLDER_SECRET
    ops_api_key: str = PLACEHOLDER_SECRET

    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/orders"
    broker_url: str = "amqp://guest:guest@127.0.0.1:5672//"  # read only for queue depths in /ops
    db_pool_size: int = 10
    db_max_overflow: int = 5
    db_pool_timeout_s: float = 2.0
    db_connect_timeout_s: int = 2
    db_statement_timeout_ms: int = 5_000

    payment_gateway: Literal["sandbox", "http"] = "sandbox"
    payment_gateway_url: str = "http://127.0.0.1:8099"
    payment_gateway_api_key: str = "sk_test_local"
    payment_connect_timeout_s: float = 1.0
    payment_read_timeout_s: float = 3.0

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

    # The lighter background tiers.
    smtp_host: str = ""  # empty: no order-received email
    smtp_port: int = 25
    smtp_timeout_s: float = 5.0
    mail_from: str = "orders@shop.example"
    analytics_url: str = ""  # empty: no analytics pings
    background_max_in_flight: int = 1_000
    background_drain_timeout_s: float = 5.0
    log_format: Literal["json", "text"] = "json"
    max_image_bytes: int = 8 * 1024 * 1024
    image_sizes: str = "128,512,1024"  # longest side of each variant, in pixels
    image_workers: int = 2  # processes in the resize pool

    # Hosts, addresses or CIDRs a webhook endpoint may point at although they are not public
    # (comma-separated; the tests and the demo allow 127.0.0.1).
    webhook_allowed_hosts: str = ""
    webhook_secret_grace_hours: float = 24.0  # both secrets sign for this long after a rotation

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> "Settings":
        if self.environment == "production":
            for name in ("secret_key", "ops_api_key"):
                if getattr(self, name) == PLACEHOLDER_SECRET:
                    raise ValueError(f"{name.upper()} must be set to a real secret in production")
        return self


settings = Settings()
