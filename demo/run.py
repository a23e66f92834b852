"""`make demo`: the whole flow on this machine, then a summary, then every process stopped.

Starts the API, the relay, a Celery worker, a webhook receiver and an SMTP sink, all on loopback;
places a scripted mix of orders through the public HTTP API; shows their statuses moving; prints
what happened; stops everything it started.
"""

import argparse
import asyncio
import base64
import json
import os
import shutil
import sys
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

from orders.stats import percentile
from stack.processes import ROOT, Stack, free_port
from stack.samples import make_cart
from stack.services import empty_queues, fresh_database

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
    table = Table(title="orders", show_lines=False)
    table.add_column("number")
    table.add_column("kind")
    table.add_column("status")
    colours = {"completed": "green", "cancelled": "yellow", "failed": "red"}
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


def stack_env(stack: str, folder: Path) -> dict[str, str]:
    """`embedded`: SQLite and a file-based kombu transport, nothing to install or run.
    `services`: PostgreSQL and RabbitMQ, from DATABASE_URL / BROKER_URL or the local defaults."""
    if stack == "embedded":
        return {
            "DATABASE_URL": f"sqlite:///{folder / 'orders.db'}",
            "BROKER_URL": "filesystem://",
            "BROKER_FOLDER": str(folder / "broker"),
        }
    return {
        "DATABASE_URL": os.environ.get(
            "DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/orders_demo"
        ),
        "BROKER_URL": os.environ.get("BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//"),
    }


def run(count: int, timeout_s: float, summary_path: Path | None, stack: str, folder: Path) -> int:
    started_at = time.monotonic()
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(folder / "logs", ignore_errors=True)
    shutil.rmtree(folder / "invoices", ignore_errors=True)
    shutil.rmtree(folder / "mail", ignore_errors=True)
    env = stack_env(stack, folder)
    console.print(
        f"[bold]demo[/] ({stack}) on {env['DATABASE_URL'].split('@')[-1]}"
        f" and {env['BROKER_URL'].split('@')[-1]}"
    )
    fresh_database(env["DATABASE_URL"])
    empty_queues(env["BROKER_URL"], env.get("BROKER_FOLDER"))

    api_port, receiver_port, smtp_port = free_port(), free_port(), free_port()
    api, receiver = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{receiver_port}"
    env |= {
        "OPS_API_KEY": OPS_KEY,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_port),
        "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
        "WEBHOOK_BACKOFF_BASE_S": "0.5",
        "WEBHOOK_BACKOFF_MAX_S": "2",
        "WEBHOOK_SWEEP_INTERVAL_S": "0.25",
        "PUBLIC_BASE_URL": api,
        "RELAY_POLL_INTERVAL_S": "0.5",
    }
    processes = Stack(folder / "logs", env)
    try:
        processes.smtp_sink(smtp_port, folder / "mail")
        processes.fake("fakes.receiver", receiver_port)
        processes.api(api_port)
        processes.relay()
        processes.worker("worker")
        processes.ready()
        console.print(
            f"API {api}, relay, worker, webhook receiver {receiver}, SMTP sink :{smtp_port}: up"
        )

        ops = {"X-API-Key": OPS_KEY}
        httpx.put(f"{receiver}/_admin/script/flaky", json={"statuses": [503, 503]})
        secrets = {}
        for path, types in (
            ("shop", [*STEPS, "order.cancelled"]),
            ("flaky", ["order.completed"]),
        ):
            endpoint = httpx.post(
                f"{api}/ops/webhook-endpoints",
                headers=ops,
                json={"url": f"{receiver}/{path}", "event_types": types},
            ).json()
            secrets[path] = endpoint["secret"]

        accepted, latencies, notes = asyncio.run(place_all(api, count))
        statuses = follow(api, accepted, timeout_s)
        settle_webhooks(api, timeout_s)
        timings = step_timings(api, accepted)
        invoices = save_invoices(api, accepted, folder / "invoices")
        webhooks = verify_webhooks(receiver, secrets)
        emails = sum(1 for _ in (folder / "mail").glob("*/*"))  # a Maildir: new/ and cur/
    finally:
        pids = [process.pid for process in processes.processes]
        for name in processes.stop():
            console.print(f"[yellow]{name} did not stop; it was killed")

    counts: dict[str, int] = {}
    for status in statuses.values():
        counts[status] = counts.get(status, 0) + 1
    summary = {
        "orders_placed": len(accepted),
        "final_statuses": counts,
        "notes": notes,
        "post_orders_ms": {"p50": percentile(latencies, 50), "p99": percentile(latencies, 99)},
        "ms_from_placed": {
            step: {"p50": percentile(v, 50), "max": max(v)} for step, v in timings.items() if v
        },
        "webhooks": webhooks,
        "emails_caught": emails,
        "invoices_saved": invoices,
        "invoice_folder": str(folder / "invoices"),
        "wall_time_s": round(time.monotonic() - started_at, 1),
        "pids": pids,
    }
    print_summary(summary)
    if summary_path:
        summary_path.write_text(json.dumps(summary, indent=2))
    settled = all(s in ("completed", "cancelled", "failed") for s in statuses.values())
    return 0 if settled and len(statuses) == len(accepted) else 1


def print_summary(summary: dict[str, Any]) -> None:
    table = Table(title="demo summary", show_header=False)
    table.add_row("orders accepted (202)", str(summary["orders_placed"]))
    table.add_row(
        "final statuses",
        ", ".join(f"{k}: {v}" for k, v in sorted(summary["final_statuses"].items())),
    )
    for note in summary["notes"]:
        table.add_row("", note)
    ms = summary["post_orders_ms"]
    table.add_row(
        "POST /orders as the client saw it", f"p50 {ms['p50']:.0f} ms, p99 {ms['p99']:.0f} ms"
    )
    for step, t in summary["ms_from_placed"].items():
        table.add_row(f"placed -> {step}", f"p50 {t['p50']:.0f} ms, max {t['max']:.0f} ms")
    for path, w in summary["webhooks"].items():
        table.add_row(
            f"webhooks to /{path}",
            f"{w['received']} received, {w['verified']} verified, {w['distinct_ids']} distinct ids",
        )
    table.add_row("order-received emails caught", str(summary["emails_caught"]))
    table.add_row("invoice PDFs", f"{summary['invoices_saved']} in {summary['invoice_folder']}")
    table.add_row("wall time", f"{summary['wall_time_s']} s")
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=12)
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--summary", type=Path, default=None, help="also write the summary as JSON")
    configured = "DATABASE_URL" in os.environ or "BROKER_URL" in os.environ
    parser.add_argument(
        "--stack",
        choices=("embedded", "services"),
        default="services" if configured else "embedded",
        help="embedded (SQLite, no broker server) unless DATABASE_URL or BROKER_URL is set",
    )
    parser.add_argument("--folder", type=Path, default=ROOT / ".demo", help="logs, invoices, data")
    args = parser.parse_args()
    sys.exit(run(args.orders, args.timeout, args.summary, args.stack, args.folder))


if __name__ == "__main__":
    main()
