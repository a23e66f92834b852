"""`make demo`: the whole flow on this machine, then a summary, then every process stopped.

Starts the API, the relay, a Celery worker, a webhook receiver and an SMTP sink, all on loopback;
places a scripted mix of orders through the public HTTP API; shows their statuses moving; prints
what happened; stops everything it started.
"""

import argparse
import asyncio
import csv
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from rich.table import Table

from demo.imports import import_stock
from demo.shop import (
    OPS_KEY,
    STEPS,
    console,
    follow,
    place_all,
    refund_one,
    save_invoices,
    settle_webhooks,
    step_timings,
    verify_webhooks,
    watch_stream,
)
from orders.money import format_money
from orders.stats import percentile
from stack.processes import ROOT, Stack, exit_on_sigterm, free_port
from stack.services import empty_queues, fresh_database

STOCK_ROWS = 50_000  # about 3 MB of CSV


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
    shutil.rmtree(folder / "credit-notes", ignore_errors=True)
    shutil.rmtree(folder / "mail", ignore_errors=True)
    shutil.rmtree(folder / "spool", ignore_errors=True)
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
        "IMPORT_SPOOL_DIR": str(folder / "spool"),
        "IMPORT_BATCH_ROWS": "2000",  # small batches: the progress bar moves
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
            ("shop", [*STEPS, "order.cancelled", "order.refunded", "catalog.imported"]),
            ("flaky", ["order.completed"]),
        ):
            endpoint = httpx.post(
                f"{api}/ops/webhook-endpoints",
                headers=ops,
                json={"url": f"{receiver}/{path}", "event_types": types},
            ).json()
            secrets[path] = endpoint["secret"]

        console.print(f"ops dashboard, while the demo runs: {api}/ops/dashboard (key {OPS_KEY!r})")
        accepted, latencies, notes = asyncio.run(place_all(api, count))
        streamed: list[str] = []
        watched = next(o for o in accepted if o["label"] == "order")  # one that goes through
        watcher = threading.Thread(
            target=watch_stream, args=(api, watched, timeout_s, streamed), daemon=True
        )
        watcher.start()
        statuses = follow(api, accepted, timeout_s)
        watcher.join(timeout=timeout_s)
        refund = refund_one(api, accepted, statuses, folder / "credit-notes", timeout_s)
        stock = import_stock(api, ops, folder, STOCK_ROWS, timeout_s)
        settle_webhooks(api, timeout_s)
        timings = step_timings(api, accepted)
        invoices = save_invoices(api, accepted, folder / "invoices")
        webhooks = verify_webhooks(receiver, secrets)
        emails = sum(1 for _ in (folder / "mail").glob("*/*"))  # a Maildir: new/ and cur/
    finally:
        exited = {process.name: process.log() for process in processes.exited()}
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
        "refund": refund,
        "stock_import": stock,
        "stream": {"order": watched["number"], "events": streamed},
        "wall_time_s": round(time.monotonic() - started_at, 1),
        "pids": pids,
    }
    print_summary(summary)
    if summary_path:
        summary_path.write_text(json.dumps(summary, indent=2))
    settled = all(s in ("completed", "cancelled", "failed", "refunded") for s in statuses.values())
    if settled and len(statuses) == len(accepted) and refund and stock["status"] == "done":
        return 0
    print_trouble(folder / "logs", exited)
    return 1


def print_trouble(logs: Path, exited: dict[str, str]) -> None:
    """What a newcomer needs when the demo did not finish: which process died, and the errors."""
    console.print(f"[red]the demo did not finish; every process logs to {logs}")
    for name, log in exited.items():
        console.print(f"[red]{name} exited by itself; its log ends:[/]\n{log[-2000:]}")
    for path in sorted(logs.glob("*.log")):
        errors = [
            line
            for line in path.read_text(errors="replace").splitlines()
            if '"level": "ERROR"' in line or '"level": "CRITICAL"' in line or "Error" in line
        ]
        if errors and path.stem not in exited:
            console.print(f"[red]{path.name}: {len(errors)} error lines; the last:[/]")
            console.print("\n".join(errors[-3:]), markup=False, highlight=False)


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
    stream = summary["stream"]
    table.add_row(
        f"live stream of order {stream['order']}",
        " -> ".join(stream["events"]) + " (the server ended it)"
        if stream["events"]
        else "[red]no events",
    )
    table.add_row("order-received emails caught", str(summary["emails_caught"]))
    table.add_row("invoice PDFs", f"{summary['invoices_saved']} in {summary['invoice_folder']}")
    if refund := summary["refund"]:
        amount = format_money(refund["amount"], refund["currency"])
        table.add_row(
            "credit note",
            f"{refund['credit_note']}: order {refund['order']} cancelled after capture, "
            f"{amount} refunded",
        )
        table.add_row("", f"in {Path(refund['path']).parent}")
    else:
        table.add_row("credit note", "[red]none: no order could be refunded")
    stock = summary["stock_import"]
    table.add_row(
        "stock import (POST /ops/imports)",
        f"{stock['rows']:,} rows, a {stock['file_mb']} MB CSV sent gzipped ({stock['upload_mb']} MB)",
    )
    done = stock["status"] == "done"
    rate = f"{stock['rows_per_s']:,.0f} rows/s" if stock["rows_per_s"] else "no rate: not started"
    table.add_row(
        "",
        f"202 after {stock['accepted_s']} s; {'' if done else '[red]'}{stock['status']}:"
        f" {stock['imported'] or 0:,} imported, {stock['skipped'] or 0} skipped, {rate}",
    )
    for i, (line, sku, reason) in enumerate(csv.reader(stock["errors"])):
        table.add_row("skipped rows (errors.csv)" if i == 0 else "", f"line {line} {sku}: {reason}")
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
    exit_on_sigterm()
    sys.exit(run(args.orders, args.timeout, args.summary, args.stack, args.folder))


if __name__ == "__main__":
    main()
