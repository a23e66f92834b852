import contextlib
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from kombu.connection import Connection

from orders.config import Settings
from orders.main import create_app
from tests.processes import Process, celery_worker, relay
from tests.support import TEST_DATABASE_URL, free_port, libpq_url, migrate, start_server

TABLES = ", ".join(
    [
        "audit_log",
        "product_image_variant",
        "product_image",
        "webhook_attempt",
        "webhook_delivery",
        "webhook_endpoint",
        "idempotency_key",
        "outbox",
        "order_event",
        "payment",
        "order_line",
        "stock_reservation",
        "invoice",
        '"order"',
        "product",
    ]
)

PRODUCTS = [
    # sku, name, unit price, currency, on hand
    ("MUG-001", "Enamel camp mug", 1_450, "EUR", 500),
    ("NB-A5", "Dot-grid notebook A5", 1_200, "EUR", 1_000),
    ("TEE-USD", "US tee", 2_000, "USD", 10),
    ("POSTER-LTD", "Signed poster (limited)", 4_500, "EUR", 10),
    ("POISON-1", "A product whose invoice crashes the worker", 100, "EUR", 100),
]


@pytest.fixture(scope="session")
def database_url() -> str:
    migrate(TEST_DATABASE_URL)
    return TEST_DATABASE_URL


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A plain connection to the test database, emptied and stocked before each test."""
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
        conn.execute("ALTER SEQUENCE order_number_seq RESTART")
        conn.execute("UPDATE invoice_counter SET last_number = 0")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO product (sku, name, unit_price, currency, stock_on_hand,"
                " stock_reserved, updated_at) VALUES (%s, %s, %s, %s, %s, 0, now())",
                PRODUCTS,
            )
        yield conn


def count(db: psycopg.Connection[Any], table: str) -> int:
    row = db.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def test_settings(database_url: str) -> Callable[..., Settings]:
    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "environment": "test",
            "database_url": database_url,
            "secret_key": "test-secret",
            "ops_api_key": "change-me",
            "webhook_allowed_hosts": "127.0.0.1",
            "idempotency_purge_interval_s": 3600,
        }
        return Settings(**(values | overrides))

    return build


@contextlib.asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://orders.test") as client:
            yield client


@pytest.fixture
async def client(
    db: psycopg.Connection[Any], test_settings: Callable[..., Settings]
) -> AsyncIterator[httpx.AsyncClient]:
    """The API with the in-process sandbox gateway."""
    async with running_app(test_settings()) as c:
        yield c


@contextlib.contextmanager
def fake_server(module: str, health_path: str) -> Iterator[str]:
    """One of fakes/ as a real server process on a free loopback port; yields its base URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_server(["-m", module, "--port", str(port)], f"{url}{health_path}")
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


class FakeGateway:
    def __init__(self, url: str) -> None:
        self.url = url

    def configure(self, **behaviour: Any) -> None:
        httpx.put(f"{self.url}/_admin/config", json=behaviour).raise_for_status()

    def stats(self) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/_admin/stats")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result


@pytest.fixture(scope="session")
def fake_gateway_server() -> Iterator[FakeGateway]:
    with fake_server("fakes.gateway", "/_admin/stats") as url:
        yield FakeGateway(url)


@pytest.fixture
def fake_gateway(fake_gateway_server: FakeGateway) -> FakeGateway:
    httpx.post(f"{fake_gateway_server.url}/_admin/reset").raise_for_status()
    return fake_gateway_server


class FakeWarehouse(FakeGateway):
    """Same admin API as the gateway: configure, stats, reset."""


@pytest.fixture(scope="session")
def fake_warehouse_server() -> Iterator[FakeWarehouse]:
    with fake_server("fakes.warehouse", "/_admin/stats") as url:
        yield FakeWarehouse(url)


@pytest.fixture
def fake_warehouse(fake_warehouse_server: FakeWarehouse) -> FakeWarehouse:
    httpx.post(f"{fake_warehouse_server.url}/_admin/reset").raise_for_status()
    return fake_warehouse_server


class FakeReceiver:
    def __init__(self, url: str) -> None:
        self.url = url

    def script(self, path: str, **script: Any) -> str:
        httpx.put(f"{self.url}/_admin/script/{path}", json=script).raise_for_status()
        return f"{self.url}/{path}"

    def received(self, path: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/_admin/received/{path}")
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()
        return result


@pytest.fixture(scope="session")
def fake_receiver_server() -> Iterator[FakeReceiver]:
    with fake_server("fakes.receiver", "/_admin/received/x") as url:
        yield FakeReceiver(url)


@pytest.fixture
def receiver(fake_receiver_server: FakeReceiver) -> FakeReceiver:
    httpx.post(f"{fake_receiver_server.url}/_admin/reset").raise_for_status()
    return fake_receiver_server


@pytest.fixture
async def http_gateway_client(
    db: psycopg.Connection[Any], test_settings: Callable[..., Settings], fake_gateway: FakeGateway
) -> AsyncIterator[httpx.AsyncClient]:
    """The API talking to the fake card gateway over loopback HTTP."""
    settings = test_settings(
        payment_gateway="http",
        payment_gateway_url=fake_gateway.url,
        payment_read_timeout_s=0.5,
        payment_connect_timeout_s=0.5,
    )
    async with running_app(settings) as c:
        yield c


TEST_VHOST = "orders_test"


@pytest.fixture(scope="session")
def broker_url() -> str:
    """A vhost of its own, so the tests never consume a developer's messages."""
    if shutil.which("rabbitmqctl"):
        subprocess.run(
            ["rabbitmqctl", "-q", "add_vhost", TEST_VHOST], check=False, capture_output=True
        )
        subprocess.run(
            ["rabbitmqctl", "-q", "set_permissions", "-p", TEST_VHOST, "guest", ".*", ".*", ".*"],
            check=True,
            capture_output=True,
        )
        return f"amqp://guest:guest@127.0.0.1:5672/{TEST_VHOST}"
    return "amqp://guest:guest@127.0.0.1:5672//"


@pytest.fixture
def broker(broker_url: str) -> str:
    """Empty queues at the start of each test."""
    with Connection(broker_url) as connection:
        channel = connection.channel()
        for name in ("orders", "invoices", "webhooks"):
            with contextlib.suppress(Exception):
                channel.queue_purge(name)
            channel = connection.channel()
    return broker_url


@pytest.fixture
def stack_env(database_url: str, broker: str, fake_gateway: FakeGateway) -> dict[str, str]:
    """The environment of workers and relays: test database, test vhost, the fake gateway."""
    return {
        "DATABASE_URL": database_url,
        "BROKER_URL": broker,
        "PAYMENT_GATEWAY": "http",
        "PAYMENT_GATEWAY_URL": fake_gateway.url,
        "PAYMENT_READ_TIMEOUT_S": "1",
        "STEP_MAX_RETRIES": "3",
        "STEP_RETRY_BACKOFF_MAX_S": "1",
        "STEP_MAX_DELIVERIES": "3",
        "CRASH_ON_SKU": "POISON-1",
        "RELAY_POLL_INTERVAL_S": "0.5",
        "RELAY_MAX_BACKOFF_S": "1",
        "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
        "WEBHOOK_BACKOFF_BASE_S": "0.4",
        "WEBHOOK_BACKOFF_MAX_S": "1.5",
        "WEBHOOK_SWEEP_INTERVAL_S": "0.2",
        "WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT": "1",
        "WEBHOOK_DISABLE_AFTER_FAILURES": "3",
        "WEBHOOK_READ_TIMEOUT_S": "10",
    }


WORKER_READY, RELAY_READY = "ready.", "relay started"


@pytest.fixture
def worker_and_relay(
    stack_env: dict[str, str], tmp_path: Path
) -> Iterator[tuple[Process, Process]]:
    """A Celery worker and a relay, started side by side (each takes seconds to import)."""
    worker, relay_ = celery_worker(stack_env, tmp_path), relay(stack_env, tmp_path)
    offsets = worker.spawn(), relay_.spawn()
    try:
        worker.wait_ready(WORKER_READY, offsets[0])
        relay_.wait_ready(RELAY_READY, offsets[1])
        yield worker, relay_
    finally:
        relay_.stop()
        worker.stop()


@pytest.fixture
async def shop(
    http_gateway_client: httpx.AsyncClient, worker_and_relay: tuple[Process, Process]
) -> httpx.AsyncClient:
    """The whole flow: the API (in process), a relay and a Celery worker (real processes)."""
    return http_gateway_client
