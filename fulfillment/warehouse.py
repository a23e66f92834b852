"""The warehouse: a client for its API, the task that tells it what an order reserved, and the
task that has it ship the order once it is both complete and known there (whichever of `notify`
and the sync commits last enqueues the shipment). Idempotent there (keys derived from the order)
and here (`warehouse_synced_at`, `shipped_at`). A confirmed shipment consumes the order's
reservation: on-hand and reserved stock both fall, in the transaction that records it."""

import uuid

import httpx
from sqlmodel import col, select

from fulfillment.runner import Context
from orders import lifecycle
from orders.messages import ShipOrder, enqueue
from orders.models import Order, OrderLine, OrderStatus, utcnow
from orders.states import SHIPPABLE
from orders.stock import consume_stock


class WarehouseUnavailable(Exception):
    """The warehouse did not confirm; retry later."""


class WarehouseClient:
    def __init__(self, http: httpx.Client, url: str, timeout_s: float) -> None:
        self.http, self.url, self.timeout_s = http, url, timeout_s

    def reserve(self, order_id: uuid.UUID, lines: list[tuple[str, int]]) -> None:
        lines_ = [{"sku": sku, "quantity": quantity} for sku, quantity in lines]
        self._post("/reservations", {"order_id": str(order_id), "lines": lines_}, order_id)

    def ship(self, order_id: uuid.UUID) -> None:
        """The warehouse ships what it holds for the order; 409 (nothing reserved there yet) is
        a reservation still on its way: retry later."""
        self._post("/shipments", {"order_id": str(order_id)}, order_id)

    def _post(self, path: str, body: dict[str, object], order_id: uuid.UUID) -> None:
        action = path.strip("/")
        try:
            response = self.http.post(
                f"{self.url}{path}",
                json=body,
                headers={"Idempotency-Key": f"order-{order_id}-{action}"},
                timeout=self.timeout_s,
            )
        except httpx.TransportError as exc:
            raise WarehouseUnavailable(repr(exc)) from exc
        if response.status_code >= 500 or response.status_code in (409, 429):
            raise WarehouseUnavailable(f"warehouse answered {response.status_code} to {action}")
        response.raise_for_status()


def client(ctx: Context) -> WarehouseClient:
    assert ctx.settings.warehouse_url is not None  # only enqueued when there is a warehouse
    return WarehouseClient(ctx.http, ctx.settings.warehouse_url, ctx.settings.warehouse_timeout_s)


def sync_warehouse(ctx: Context, order_id: uuid.UUID) -> None:
    with ctx.sessions() as session:
        order = session.get(Order, order_id)
        if order is None or order.warehouse_synced_at is not None:
            return
        lines = session.exec(
            select(OrderLine.sku, OrderLine.quantity)
            .where(OrderLine.order_id == order_id)
            .order_by(col(OrderLine.id))
        ).all()
    client(ctx).reserve(order_id, [(sku, quantity) for sku, quantity in lines])
    with ctx.sessions() as session:
        order = lifecycle.lock(session, order_id)  # notify takes it too: one of them ships
        if order is None or order.warehouse_synced_at is not None:
            return
        order.warehouse_synced_at = utcnow()
        session.add(order)
        if order.status == OrderStatus.COMPLETED:  # else notify enqueues it
            enqueue(session, ShipOrder(order_id=order_id))
        session.commit()


def ship_order(ctx: Context, order_id: uuid.UUID) -> None:
    with ctx.sessions() as session:
        order = session.get(Order, order_id)
        if order is None or order.shipped_at is not None or order.status not in SHIPPABLE:
            return
    client(ctx).ship(order_id)
    with ctx.sessions() as session:
        order = lifecycle.lock(session, order_id)
        if order is None or order.shipped_at is not None:
            return
        consume_stock(session, order_id)
        order.shipped_at = utcnow()
        session.add(order)
        lifecycle.record_event(session, order, "order.shipped", {}, ctx.settings.public_base_url)
        session.commit()
