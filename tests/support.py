"""Builders and helpers shared by the tests."""

import os
import socket
import subprocess
import sys
import time
import uuid
from typing import Any

import httpx
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

from orders.db import ensure_database

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST_DATABASE_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/orders_test"
)


def libpq_url(url: str) -> str:
    """The SQLAlchemy URL without its `+psycopg` driver suffix, for psycopg itself."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def alembic_config(url: str) -> Config:
    config = Config(os.path.join(ROOT, "alembic.ini"))
    config.attributes["database_url"] = url
    config.attributes["configure_logger"] = False
    return config


def migrate(url: str) -> None:
    ensure_database(url)
    command.upgrade(alembic_config(url), "head")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    args: list[str], health_url: str, timeout_s: float = 15
) -> subprocess.Popen[bytes]:
    """Start a real server process on loopback and wait until it answers."""
    process = subprocess.Popen([sys.executable, *args], cwd=ROOT)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{args} exited with {process.returncode}")
        try:
            httpx.get(health_url, timeout=0.5)
            return process
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{args} did not answer at {health_url} within {timeout_s} s")


def make_cart(**overrides: Any) -> dict[str, Any]:
    cart: dict[str, Any] = {
        "customer": {"email": "ada@example.com", "name": "Ada Lovelace"},
        "shipping_address": {
            "name": "Ada Lovelace",
            "line1": "12 Analytical Row",
            "city": "London",
            "postal_code": "N1 9GU",
            "country": "GB",
        },
        "lines": [{"sku": "MUG-001", "quantity": 2}, {"sku": "NB-A5", "quantity": 1}],
        "currency": "EUR",
        "payment_token": "tok_visa",
    }
    cart.update(overrides)
    return cart


def new_key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}
