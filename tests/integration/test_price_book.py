"""Checkout's price book against the real PostgreSQL: prices kept in the API process are
forgotten when the catalog changes, and while the API cannot hear about changes."""

import contextlib
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bench.round_trips import RoundTrips, api_engines
from orders.api.app import create_app
from orders.api.config import ApiSettings
from orders.catalog import PriceBook
from stack.samples import make_cart
from tests.helpers import eventually, new_key

# Ada's cart: two MUG-001 at 14.50 and one NB-A5 at 12.00.
BEFORE, AFTER = 4_100, 2 * 16_00 + 12_00
CHANGES = {
    "an update": "UPDATE product SET unit_price = 1600 WHERE sku = 'MUG-001'",
    # The statement a stock import's merge changes products with (fulfillment.stock_merge).
    "an import's upsert": (
        "INSERT INTO product AS p (sku, name, unit_price, currency, stock_on_hand,"
        " stock_reserved, updated_at) VALUES ('MUG-001', 'Mug', 1600, 'EUR', 50, 0, now())"
        " ON CONFLICT (sku) DO UPDATE SET unit_price = EXCLUDED.unit_price"
    ),
}


@contextlib.asynccontextmanager
async def api(settings: ApiSettings) -> AsyncIterator[tuple[httpx.AsyncClient, PriceBook, Any]]:
    """The API in this process, once its price book is trusted: client, book, its engines."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        catalog: PriceBook = app.state.catalog
        await eventually(lambda: catalog.trusted, 10, "the API's LISTEN connection")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://orders.test") as client:
            yield client, catalog, api_engines(app)


async def subtotal(client: httpx.AsyncClient) -> int:
    response = await client.post("/orders", json=make_cart(), headers=new_key())
    assert response.status_code == 202, response.text
    return int(response.json()["subtotal"])


async def kept_prices_answer(client: httpx.AsyncClient, engines: list[Any]) -> bool:
    """Whether a checkout priced its cart without reading the catalog."""
    with RoundTrips(*engines) as trips:
        await subtotal(client)
    return "SELECT" not in trips.statements


async def charged_after(client: httpx.AsyncClient, seconds: float) -> list[int]:
    """The subtotal of a checkout every 20 ms until AFTER is charged or `seconds` pass."""
    seen: list[int] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and AFTER not in seen:
        seen.append(await subtotal(client))
    return seen


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
async def test_a_price_changed_in_the_catalog_is_charged_from_the_next_checkouts(
    db, test_settings, change
):
    async with api(test_settings()) as (client, _, engines):
        assert await subtotal(client) == BEFORE
        assert await kept_prices_answer(client, engines)

        db.execute(change)
        seen = await charged_after(client, 5)

        # The old price for as long as the notification travels (milliseconds), then the new.
        assert seen[-1] == AFTER, seen
        assert set(seen) <= {BEFORE, AFTER}, seen
        assert await kept_prices_answer(client, engines)  # and kept again


async def test_prices_kept_while_the_api_could_not_hear_of_changes_are_forgotten(db, test_settings):
    async with api(test_settings()) as (client, catalog, engines):
        assert await subtotal(client) == BEFORE
        assert await kept_prices_answer(client, engines)

        ended = db.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = %s",
            (f"orders-api-listen:{os.getpid()}",),
        ).fetchone()
        assert ended == (1,)
        db.execute(CHANGES["an update"])  # nobody listens: its notification is lost
        seen = await charged_after(client, 5)

        assert seen[-1] == AFTER, seen
        await eventually(lambda: catalog.trusted, 10, "the LISTEN connection back")
        assert not await kept_prices_answer(client, engines)  # forgotten on the way back...
        assert await kept_prices_answer(client, engines)  # ...and kept again
