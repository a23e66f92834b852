"""Fixtures only; what tests share besides them is in tests/helpers.py."""

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from kombu.connection import Connection

from fulfillment.config import WorkerSettings
from fulfillment.runner import Context
from orders.api.config import ApiSettings
from orders.db import libpq_url, make_engine, make_sessionmaker
from orders.messages import QUEUES, Queue
from orders.payments import SandboxGateway
from stack.processes import Stack, free_port
from tests.helpers import (
    REFUSED,
    TEST_DATABASE_URL,
    FakeReceiver,
    FakeServer,
    migrate,
    running_app,
    vhost,
)

TABLES = ", ".join(
    [
        "audit_log",
        "import_row_error",
        "import_job",
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
        "credit_note",
        "cancellation",
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
        conn.execute("UPDATE credit_note_counter SET last_number = 0")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO product (sku, name, unit_price, currency, stock_on_hand,"
                " stock_reserved, updated_at) VALUES (%s, %s, %s, %s, %s, 0, now())",
                PRODUCTS,
            )
        yield conn


@pytest.fixture
def test_settings(database_url: str) -> Callable[..., ApiSettings]:
    def build(**overrides: Any) -> ApiSettings:
        values: dict[str, Any] = {
            "environment": "test",
            "database_url": database_url,
            "secret_key": "test-secret",
            "ops_api_key": "change-me",
            "webhook_allowed_hosts": "127.0.0.1",
            "idempotency_purge_interval_s": 3600,
        }
        return ApiSettings(**(values | overrides))

    return build


@pytest.fixture
async def client(
    db: psycopg.Connection[Any], test_settings: Callable[..., ApiSettings]
) -> AsyncIterator[httpx.AsyncClient]:
    """The API with the in-process sandbox gateway."""
    async with running_app(test_settings()) as c:
        yield c


@pytest.fixture(scope="session")
def fakes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The fakes of fakes/ as real servers on free loopback ports, for the whole session."""
    stack = Stack(tmp_path_factory.mktemp("fakes"), {})
    urls = {}
    for module in ("fakes.gateway", "fakes.warehouse", "fakes.receiver"):
        port = free_port()
        stack.fake(module, port)
        urls[module] = f"http://127.0.0.1:{port}"
    stack.ready(timeout_s=15)
    yield urls
    stack.stop()


@pytest.fixture
def fake_gateway(fakes: dict[str, str]) -> FakeServer:
    gateway = FakeServer(fakes["fakes.gateway"])
    gateway.reset()
    return gateway


@pytest.fixture
def fake_warehouse(fakes: dict[str, str]) -> FakeServer:
    warehouse = FakeServer(fakes["fakes.warehouse"])
    warehouse.reset()
    return warehouse


@pytest.fixture
def receiver(fakes: dict[str, str]) -> FakeReceiver:
    receiver = FakeReceiver(fakes["fakes.receiver"])
    receiver.reset()
    return receiver


@pytest.fixture
async def http_gateway_client(
    db: psycopg.Connection[Any], test_settings: Callable[..., ApiSettings], fake_gateway: FakeServer
) -> AsyncIterator[httpx.AsyncClient]:
    """The API talking to the fake card gateway over loopback HTTP, with the production timeouts:
    forty checkouts at once share this one event loop, and on a busy machine a tighter read
    timeout fires while the answer waits in the loop's queue. The timeout test sets its own."""
    settings = test_settings(payment_gateway="http", payment_gateway_url=fake_gateway.url)
    async with running_app(settings) as c:
        yield c


TEST_VHOST = "orders_test"


@pytest.fixture(scope="session")
def broker_url() -> str:
    """A vhost of its own, so the tests never consume a developer's messages."""
    return vhost(TEST_VHOST)


@pytest.fixture
def broker(broker_url: str) -> str:
    """Empty queues at the start of each test."""
    with Connection(broker_url) as connection:
        for name in QUEUES:
            channel = connection.channel()
            with contextlib.suppress(Exception):  # not declared yet: nothing to purge
                channel.queue_purge(name.value)
    return broker_url


@pytest.fixture
def stack_env(database_url: str, broker: str, fake_gateway: FakeServer) -> dict[str, str]:
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


@pytest.fixture
def step_context(database_url: str) -> Iterator[Context]:
    """What a worker gives the steps, for calling them in this process: the test database, the
    sandbox gateway, no broker."""
    settings = WorkerSettings(
        database_url=database_url, step_max_deliveries=2, public_base_url="http://shop.test"
    )
    engine = make_engine(settings, "test-steps")
    with httpx.Client() as http:
        yield Context(make_sessionmaker(engine), SandboxGateway(), settings, http)
    engine.dispose()


@pytest.fixture
def processes(stack_env: dict[str, str], tmp_path: Path) -> Iterator[Stack]:
    """Workers and relays for one test: start them (`processes.worker()`, `.relay()`, then
    `.ready()`), with `processes.env` changed first if need be; all are stopped afterwards."""
    stack = Stack(tmp_path / "logs", stack_env)
    yield stack
    stack.stop()


@pytest.fixture
def shop(http_gateway_client: httpx.AsyncClient, processes: Stack) -> httpx.AsyncClient:
    """The whole flow: the API (in process), a relay and a Celery worker taking the order and
    invoice queues (real processes)."""
    processes.worker(queues=f"{Queue.STEPS},{Queue.INVOICES}")
    processes.relay()
    processes.ready()
    return http_gateway_client


@pytest.fixture
def webhook_shop(shop: httpx.AsyncClient, processes: Stack) -> httpx.AsyncClient:
    """`shop`, and webhooks on a worker of their own, as in production."""
    processes.worker("webhook-worker", queues=Queue.WEBHOOKS)
    processes.ready()
    return shop


@pytest.fixture
def order_insert_fails(db: psycopg.Connection[Any]) -> Iterator[None]:
    """The database refuses an order for the customer REFUSED, after the checkout authorized it."""
    db.execute(
        "CREATE OR REPLACE FUNCTION refuse_order() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN RAISE EXCEPTION 'injected: the order cannot be written'; END $$"
    )
    db.execute(
        'CREATE TRIGGER refuse_order BEFORE INSERT ON "order" FOR EACH ROW'
        f" WHEN (NEW.customer_name = '{REFUSED}') EXECUTE FUNCTION refuse_order()"
    )
    yield
    db.execute('DROP TRIGGER IF EXISTS refuse_order ON "order"')
    db.execute("DROP FUNCTION IF EXISTS refuse_order()")
