"""The warehouse: a client for its reservations API, and the task that tells it what an order
reserved. Idempotent there (the key is the order's) and here (`warehouse_synced_at`)."""

import uuid

import httpx
from sqlalchemy import update
from sqlmodel import col, select

from fulfillment.runner import Context
from orders.models import Order, OrderLine, table, utcnow


class WarehouseUnavailable(Exception):
    """The warehouse did not confirm the reservation; retry later."""


class WarehouseClient:
    def __init__(self, http: httpx.Client, url: str, timeout_s: float) -> None:
        self.http, self.url, self.timeout_s = http, url, timeout_s

    def reserve(self, order_id: uuid.UUID, lines: list[tuple[str, int]]) -> None:
        try:
            response = self.http.post(
                f"{self.url}/reservations",
                json={
                    "order_id": str(order_id),
                    "lines": [{"sku": sku, "quantity": quantity} for sku, quantity in lines],
                },
                headers={"Idempotency-Key": f"order-{order_id}-reserve"},
                timeout=self.timeout_s,
            )
        except httpx.TransportError as exc:
            raise WarehouseUnavailable(repr(exc)) from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise WarehouseUnavailable(f"warehouse answered {response.status_code}")
        response.raise_for_status()


def sync_warehouse(ctx: Context, order_id: uuid.UUID) -> None:
    assert ctx.settings.warehouse_url is not None  # only enqueued when there is a warehouse
    with ctx.sessions() as session:
        order = session.get(Order, order_id)
        if order is None or order.warehouse_synced_at is not None:
            return
        lines = session.exec(
            select(OrderLine.sku, OrderLine.quantity)
            .where(OrderLine.order_id == order_id)
            .order_by(col(OrderLine.id))
        ).all()
    client = WarehouseClient(ctx.http, ctx.settings.warehouse_url, ctx.settings.warehouse_timeout_s)
    client.reserve(order_id, [(sku, quantity) for sku, quantity in lines])
    with ctx.sessions() as session:
        orders = table(Order)
        session.exec(
            update(orders).where(orders.c.id == order_id).values(warehouse_synced_at=utcnow())
        )
        session.commit()
