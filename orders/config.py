"""Settings both sides read, from the environment (and `.env`): where the database, the broker and
the card gateway are, and how to log. Each process adds what only it needs (orders.api.config,
fulfillment.config)."""

from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

from orders.webhooks import Allowed


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    log_format: Literal["json", "text"] = "json"

    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/orders"
    db_pool_size: int = 10
    db_max_overflow: int = 5
    db_pool_timeout_s: float = 2.0
    db_connect_timeout_s: int = 2
    db_statement_timeout_ms: int = 5_000  # 0: none
    # A PostgreSQL peer gone silent (a partition, a dead host) turns into an error within about
    # this long: TCP keepalives and tcp_user_timeout on every connection.
    db_dead_peer_timeout_s: int = 20

    broker_url: str = "amqp://guest:guest@127.0.0.1:5672//"
    broker_folder: str = ".demo/broker"  # for the embedded demo's filesystem:// transport

    payment_gateway: Literal["sandbox", "http"] = "sandbox"
    payment_gateway_url: str = "http://127.0.0.1:8099"
    payment_gateway_api_key: str = "sk_test_local"
    payment_connect_timeout_s: float = 1.0
    payment_read_timeout_s: float = 3.0

    # Where customers and webhook receivers reach this API (the invoice URL in order snapshots).
    public_base_url: str = "http://127.0.0.1:8000"
    # Hosts, addresses or CIDRs a webhook endpoint may point at although they are not public
    # (comma-separated; the tests and the demo allow 127.0.0.1).
    webhook_allowed_hosts: str = ""
    # Ports a webhook endpoint may use besides 80 and 443 (comma-separated).
    webhook_allowed_ports: str = ""

    # Uploaded stock files wait here for their import: a folder the API and the workers that take
    # the imports queue share (one machine, or a shared volume).
    import_spool_dir: str = ".spool/imports"

    def allowed_destinations(self) -> Allowed:
        return Allowed.of(self.webhook_allowed_hosts, self.webhook_allowed_ports)
