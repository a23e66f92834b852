"""Helpers for tests that run the whole flow: place orders, wait for them to settle, read back."""

import asyncio
import io
import time
from typing import Any

import httpx
import psycopg
from pypdf import PdfReader

from tests.support import make_cart, new_key

SETTLED = ("completed", "cancelled", "failed")


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
    deadline = time.monotonic() + timeout_s
    while True:
        rows = db.execute(
            'SELECT id::text, status FROM "order" WHERE id = ANY(%s::uuid[])', (order_ids,)
        ).fetchall()
        statuses = dict(rows)
        if len(statuses) == len(order_ids) and all(s in SETTLED for s in statuses.values()):
            return statuses
        if time.monotonic() > deadline:
            raise AssertionError(f"orders not settled after {timeout_s} s: {statuses}")
        await asyncio.sleep(0.1)


def event_types(db: psycopg.Connection[Any], order_id: str) -> list[str]:
    rows = db.execute(
        "SELECT type FROM order_event WHERE order_id = %s ORDER BY seq", (order_id,)
    ).fetchall()
    return [row[0] for row in rows]


def invoice_numbers(db: psycopg.Connection[Any]) -> list[int]:
    return [row[0] for row in db.execute("SELECT number FROM invoice ORDER BY number").fetchall()]


def pdf_text(pdf: bytes) -> tuple[int, str]:
    reader = PdfReader(io.BytesIO(pdf))
    return len(reader.pages), "\n".join(page.extract_text() for page in reader.pages)


COMPLETED_TIMELINE = [
    "order.placed",
    "order.reserved",
    "order.paid",
    "order.invoiced",
    "order.completed",
]
