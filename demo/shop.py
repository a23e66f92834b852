"""What the demo does through the public HTTP API, as a storefront and a merchant would: place a
scripted mix of orders, follow them, read their timelines, fetch their invoices, check the
webhooks that arrived."""

import asyncio
import base64
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.live import Live
from rich.table import Table
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from stack.samples import make_cart

OPS_KEY = "demo-ops-key"
STEPS = ("order.placed", "order.reserved", "order.paid", "order.invoiced", "order.completed")
console = Console()


def cart(
    sku: str = "MUG-001", quantity: int = 1, token: str = "tok_visa", n: int = 0
) -> dict[str, Any]:
    """Customer `n`'s cart: `quantity` of `sku` and a notebook."""
    address = make_cart()["shipping_address"] | {
        "name": f"Customer {n}",
        "line1": f"{n} Demo Street",
    }
    return make_cart(
        customer={"email": f"customer{n}@example.com", "name": f"Customer {n}"},
        shipping_address=address,
        lines=[{"sku": sku, "quantity": quantity}, {"sku": "NB-A5", "quantity": 1}],
        payment_token=token,
    )


def scripted_orders(count: int) -> list[tuple[str, dict[str, Any]]]:
    """A mix: mostly good orders, one declined card, one out of stock, one double submit."""
    script: list[tuple[str, dict[str, Any]]] = [
        ("declined card", cart(token="tok_chargeDeclined", n=1)),
        ("out of stock", cart(sku="POSTER-LTD", quantity=6, n=2)),
        ("double submit", cart(n=3)),
    ]
    skus = ("MUG-001", "TEE-BLK-M", "BAG-TOTE", "PEN-BRASS", "CAP-OLV")
    for i in range(max(1, count - len(script))):
        script.append(("order", cart(sku=skus[i % len(skus)], quantity=1 + i % 3, n=10 + i)))
    return script


async def place_all(api: str, count: int) -> tuple[list[dict[str, Any]], list[float], list[str]]:
    accepted, latencies, notes = [], [], []
    async with httpx.AsyncClient(base_url=api, timeout=10) as client:
        limit = asyncio.Semaphore(4)  # a storefront's few connections, not a load test

        async def one(label: str, body: dict[str, Any]) -> None:
            key = str(uuid.uuid4())
            async with limit:
                started = time.perf_counter()
                response = await client.post("/orders", json=body, headers={"Idempotency-Key": key})
                latencies.append((time.perf_counter() - started) * 1000)
                if label == "double submit":
                    again = await client.post(
                        "/orders", json=body, headers={"Idempotency-Key": key}
                    )
                    same = again.json().get("id") == response.json().get("id")
                    notes.append(
                        f"double submit: same order both times: {same} "
                        f"(replayed: {again.headers.get('idempotent-replayed')})"
                    )
            if response.status_code == 202:
                accepted.append(response.json() | {"label": label})
            else:
                notes.append(f"{label}: {response.status_code} {response.json().get('detail')}")

        await asyncio.gather(*(one(label, body) for label, body in scripted_orders(count)))
    return accepted, latencies, notes


def status_table(orders: list[dict[str, Any]], statuses: dict[str, str]) -> Table:
    table = Table(title="orders, as the chain left them", show_lines=False)
    table.add_column("number")
    table.add_column("kind")
    table.add_column("status")
    colours = {"completed": "green", "cancelled": "yellow", "refunded": "yellow", "failed": "red"}
    for order in sorted(orders, key=lambda o: o["number"])[:40]:
        status = statuses.get(order["id"], "pending")
        table.add_row(
            str(order["number"]), order["label"], f"[{colours.get(status, 'cyan')}]{status}"
        )
    return table


def follow(api: str, orders: list[dict[str, Any]], timeout_s: float) -> dict[str, str]:
    statuses: dict[str, str] = {}
    deadline = time.monotonic() + timeout_s
    with (
        httpx.Client(base_url=api, timeout=10) as client,
        Live(status_table(orders, statuses), console=console, refresh_per_second=4) as live,
    ):
        while time.monotonic() < deadline:
            for order in orders:
                if statuses.get(order["id"]) in ("completed", "cancelled", "failed"):
                    continue
                auth = {"Authorization": f"Bearer {order['access_token']}"}
                statuses[order["id"]] = client.get(order["status_url"], headers=auth).json()[
                    "status"
                ]
            live.update(status_table(orders, statuses))
            if all(s in ("completed", "cancelled", "failed") for s in statuses.values()):
                break
            time.sleep(0.25)
    console.line()  # a live table left in a pipe ends without a newline
    return statuses


def settle_webhooks(api: str, timeout_s: float) -> None:
    """Wait until no webhook delivery is pending (the flaky receiver wants three tries)."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=api, headers={"X-API-Key": OPS_KEY}, timeout=10) as client:
        while time.monotonic() < deadline:
            page = client.get("/ops/webhook-deliveries", params={"status": "pending", "limit": 1})
            if not page.json()["items"]:
                return
            time.sleep(0.25)


def step_timings(api: str, orders: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Milliseconds from each order's placement to each later event."""
    timings: dict[str, list[float]] = {step: [] for step in STEPS[1:]}
    with httpx.Client(base_url=api, timeout=10) as client:
        for order in orders:
            auth = {"Authorization": f"Bearer {order['access_token']}"}
            events = client.get(order["events_url"], headers=auth).json()
            at = {e["type"]: e["occurred_at"] for e in events}
            placed = at["order.placed"]
            for step in STEPS[1:]:
                if step in at:
                    timings[step].append(_ms_between(placed, at[step]))
    return timings


def _ms_between(a: str, b: str) -> float:
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds() * 1000


def save_invoices(api: str, orders: list[dict[str, Any]], folder: Path) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    saved = 0
    with httpx.Client(base_url=api, timeout=10) as client:
        for order in orders:
            auth = {"Authorization": f"Bearer {order['access_token']}"}
            response = client.get(f"/orders/{order['id']}/invoice.pdf", headers=auth)
            if response.status_code == 200:
                (folder / f"invoice-order-{order['number']}.pdf").write_bytes(response.content)
                saved += 1
    return saved


def verify_webhooks(receiver: str, secrets: dict[str, str]) -> dict[str, dict[str, int]]:
    report = {}
    for path, secret in secrets.items():
        received = httpx.get(f"{receiver}/_admin/received/{path}").json()
        verified = 0
        for message in received:
            try:
                Webhook(secret).verify(base64.b64decode(message["body_b64"]), message["headers"])
                verified += 1
            except WebhookVerificationError:
                pass
        ids = {m["headers"]["webhook-id"] for m in received}
        report[path] = {"received": len(received), "verified": verified, "distinct_ids": len(ids)}
    return report


def refund_one(
    api: str, orders: list[dict[str, Any]], statuses: dict[str, str], folder: Path, timeout_s: float
) -> dict[str, Any] | None:
    """The merchant cancels one completed order after its capture: the money goes back and a
    credit note is issued; the storefront fetches it with the order's token."""
    completed = [
        o for o in orders if statuses.get(o["id"]) == "completed" and o["label"] == "order"
    ]
    if not completed:
        return None
    order = completed[0]
    auth = {"Authorization": f"Bearer {order['access_token']}"}
    headers = {"X-API-Key": OPS_KEY, "Idempotency-Key": str(uuid.uuid4())}
    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=api, timeout=10) as client:
        cancel = client.post(
            f"/ops/orders/{order['id']}/cancel", headers=headers, json={"reason": "demo: returned"}
        ).json()
        while time.monotonic() < deadline:
            events = client.get(order["events_url"], headers=auth).json()
            refunded = [e for e in events if e["type"] == "order.refunded"]
            if refunded:
                number = refunded[0]["data"]["refund"]["credit_note"]
                url = f"/orders/{order['id']}/credit-notes/{number}.pdf"
                response = client.get(url, headers=auth)
                if response.status_code == 200:
                    folder.mkdir(parents=True, exist_ok=True)
                    path = folder / f"credit-note-{number}.pdf"
                    path.write_bytes(response.content)
                    statuses[order["id"]] = client.get(order["status_url"], headers=auth).json()[
                        "status"
                    ]
                    return {
                        "order": order["number"],
                        "credit_note": number,
                        "amount": cancel["amount"],
                        "currency": order["currency"],
                        "path": str(path),
                    }
            time.sleep(0.25)
    return None


def watch_stream(api: str, order: dict[str, Any], timeout_s: float, seen: list[str]) -> None:
    """The storefront's way of following an order: its live stream (Server-Sent Events), read
    until the server ends it; each event's `id:` and type go into `seen` as they arrive."""
    auth = {"Authorization": f"Bearer {order['access_token']}"}
    event_id = ""
    with (
        httpx.Client(base_url=api, timeout=timeout_s) as client,
        client.stream("GET", order["stream_url"], headers=auth) as response,
    ):
        for line in response.iter_lines():
            if line.startswith("id:"):
                event_id = line.removeprefix("id:").strip()
            elif line.startswith("event:"):
                seen.append(f"{event_id} {line.removeprefix('event:').strip()}")
