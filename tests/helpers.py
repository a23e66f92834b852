"""What the tests share besides fixtures: builders, readers of the database, clients of the fakes,
and waits with deadlines."""

import contextlib
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
from alembic import command
from alembic.config import Config

from orders.api.app import create_app
from orders.api.config import ApiSettings
from orders.db import ensure_database
from stack.processes import ROOT, loopback_client
from stack.processes import eventually as eventually  # the tests' own, re-exported
from stack.samples import make_cart

TEST_DATABASE_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/orders_test"
)
OPS = {"X-API-Key": "change-me"}
PROBLEM = "application/problem+json"
REFUSED = "Refused By Trigger"  # the customer whose order `order_insert_fails` refuses
SETTLED = ("completed", "cancelled", "failed")
COMPLETED_TIMELINE = [
    "order.placed",
    "order.reserved",
    "order.paid",
    "order.invoiced",
    "order.completed",
]


def vhost(name: str) -> str:
    """A RabbitMQ vhost of its own (created if need be), so that one run's workers never take
    another's messages: the tests', the demo's and the bench's queues have the same names."""
    if not shutil.which("rabbitmqctl"):
        return "amqp://guest:guest@127.0.0.1:5672//"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", name], check=False, capture_output=True)
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", name, "guest", ".*", ".*", ".*"],
        check=True,
        capture_output=True,
    )
    return f"amqp://guest:guest@127.0.0.1:5672/{name}"


def run_to_end(args: list[str], env: dict[str, str], timeout_s: float) -> tuple[int, str]:
    """Run a program that starts processes of its own (the demo, the bench) to its end; its exit
    code and its output. Past `timeout_s` it gets SIGTERM, so that it stops what it started, and
    SIGKILL a minute later: killed outright, it would leave its workers running."""
    with subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        try:
            output, _ = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGTERM)
            try:
                output, _ = process.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                output, _ = process.communicate()
            output += f"\n[stopped after {timeout_s} s]"
        return process.returncode, output


def sibling_database(name: str) -> str:
    """Another database on the test server, for tests that drop or fill one of their own."""
    return TEST_DATABASE_URL.rsplit("/", 1)[0] + f"/{name}"


def alembic_config(url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["database_url"] = url
    config.attributes["configure_logger"] = False
    return config


def migrate(url: str) -> None:
    ensure_database(url)
    command.upgrade(alembic_config(url), "head")


def new_key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


@contextlib.asynccontextmanager
async def running_app(settings: ApiSettings) -> AsyncIterator[httpx.AsyncClient]:
    """The API in this process, its lifespan run, reached through ASGI."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # as a server would
        async with httpx.AsyncClient(transport=transport, base_url="http://orders.test") as client:
            yield client


def count(db: psycopg.Connection[Any], table: str) -> int:
    row = db.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


async def place(client: httpx.AsyncClient, **cart: Any) -> dict[str, Any]:
    response = await client.post("/orders", json=make_cart(**cart), headers=new_key())
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def status_of(db: psycopg.Connection[Any], order_id: str) -> str:
    row = db.execute('SELECT status FROM "order" WHERE id = %s', (order_id,)).fetchone()
    assert row is not None
    return str(row[0])


async def settle(
    db: psycopg.Connection[Any], order_ids: list[str], timeout_s: float = 60
) -> dict[str, str]:
    """Wait until every order is completed, cancelled or failed; return their statuses."""
    statuses: dict[str, str] = {}

    def settled() -> bool:
        rows = db.execute(
            'SELECT id::text, status FROM "order" WHERE id = ANY(%s::uuid[])', (order_ids,)
        ).fetchall()
        statuses.update(rows)
        return len(statuses) == len(order_ids) and all(s in SETTLED for s in statuses.values())

    await eventually(settled, timeout_s, f"orders to settle (now {statuses})")
    return statuses


def event_types(db: psycopg.Connection[Any], order_id: str) -> list[str]:
    rows = db.execute(
        "SELECT type FROM order_event WHERE order_id = %s ORDER BY seq", (order_id,)
    ).fetchall()
    return [row[0] for row in rows]


def invoice_numbers(db: psycopg.Connection[Any]) -> list[int]:
    return [row[0] for row in db.execute("SELECT number FROM invoice ORDER BY number").fetchall()]


def stock(db: psycopg.Connection[Any], sku: str) -> tuple[int, int]:
    row = db.execute(
        "SELECT stock_on_hand, stock_reserved FROM product WHERE sku = %s", (sku,)
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def assert_nothing_written(db: psycopg.Connection[Any]) -> None:
    for table in ('"order"', "order_line", "payment", "order_event", "outbox"):
        assert count(db, table) == 0, table
    # A claim may stay (unlocked, so a retry can take it), but never a finished response.
    assert count(db, "idempotency_key WHERE status = 'completed'") == 0


def assert_problem(
    response: httpx.Response, status: int, field: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].startswith("/problems/")
    assert body["title"]
    if field is not None:
        assert field in [e["field"] for e in body["errors"]], body
        assert field in body["detail"]
    return body


class FakeServer:
    """A fake on loopback (fakes/), driven through its admin API (one client for every call: a
    new one costs ~20 ms of CPU, and `eventually` asks several times a second)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = loopback_client(5)

    def reset(self) -> None:
        self.http.post(f"{self.url}/_admin/reset").raise_for_status()

    def configure(self, **behaviour: Any) -> None:
        self.http.put(f"{self.url}/_admin/config", json=behaviour).raise_for_status()

    def stats(self) -> dict[str, Any]:
        response = self.http.get(f"{self.url}/_admin/stats")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result


class FakeReceiver(FakeServer):
    def script(self, path: str, **script: Any) -> str:
        self.http.put(f"{self.url}/_admin/script/{path}", json=script).raise_for_status()
        return f"{self.url}/{path}"

    def received(self, path: str) -> list[dict[str, Any]]:
        response = self.http.get(f"{self.url}/_admin/received/{path}")
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()
        return result

    def most_at_once(self, path: str) -> int:
        """The most requests to `path` the receiver had open at once."""
        response = self.http.get(f"{self.url}/_admin/most-at-once/{path}")
        response.raise_for_status()
        return int(response.json())
