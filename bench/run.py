"""`make bench`: the 500 ms rule, measured on this machine against limits measured in the same run.

    python -m bench.run            # 4 to 24 minutes, by how busy the machine is
    python -m bench.run --smoke    # a few minutes: checks that the table and the JSON come out

Runs on PostgreSQL and RabbitMQ as production would (uvicorn with 2 workers, the relay, Celery
workers, a fake card gateway answering after 50 ms), all on 127.0.0.1, and writes
bench/results/<timestamp>.json. Checkout phases run with the relay and workers stopped: on a
2-core box they would take the API's CPU, where in production they run on other machines. The
pipeline runs twice, once per worker layout (LAYOUTS), each against its own render limit.
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg

from bench.capacity import capacity, openloop, settle, within_budget
from bench.flows import (
    LAYOUTS,
    ORDER_EVENTS,
    delivered,
    pipeline,
    render_processes,
    start_workers,
    steady,
    subscribe,
)
from bench.imports import imports_phase, print_imports
from bench.procs import RssSampler, cpu_spent, service_roots, snapshot
from bench.round_trips import checkout_round_trips
from bench.stream_load import streams_phase
from bench.table import print_table
from orders.api.config import ApiSettings
from orders.db import libpq_url
from stack.processes import ROOT, Stack, exit_on_sigterm, free_port
from stack.services import empty_queues, fresh_database

RESULTS = ROOT / "bench" / "results"
STARTED = time.monotonic()


def phase(name: str) -> None:
    """A line on stderr as each phase begins, so a long run shows where it is."""
    print(f"[{time.monotonic() - STARTED:6.0f} s] {name}", file=sys.stderr, flush=True)


def median_render_s(samples: int) -> float:
    """The render limit's denominator: one invoice, rendered here, in this run."""
    code = (
        "import time, statistics\n"
        "from stack.samples import make_invoice\n"
        "from fulfillment.pdf import render_pdf\n"
        "doc = make_invoice(); render_pdf(doc)\n"
        f"times = []\nfor _ in range({samples}):\n"
        "    t = time.perf_counter(); render_pdf(doc); times.append(time.perf_counter() - t)\n"
        "print(statistics.median(times))\n"
    )
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def set_gateway_latency(gateway: str, latency_ms: int) -> None:
    httpx.put(f"{gateway}/_admin/config", json={"latency_ms": latency_ms}).raise_for_status()


def run(smoke: bool) -> dict[str, Any]:
    folder = ROOT / ".bench"
    db_url = os.environ.get(
        "BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/orders_bench"
    )
    broker_url = os.environ.get("BENCH_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
    env = {"DATABASE_URL": db_url, "BROKER_URL": broker_url}
    phase("a fresh database, the API and the fake gateway")
    fresh_database(db_url)
    empty_queues(broker_url)
    with psycopg.connect(libpq_url(db_url), autocommit=True) as conn:
        conn.execute("UPDATE product SET stock_on_hand = 1000000000")

    gateway_port, api_port, receiver_port = free_port(), free_port(), free_port()
    api, gateway = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{gateway_port}"
    env |= {
        "PAYMENT_GATEWAY": "http",
        "PAYMENT_GATEWAY_URL": gateway,
        "LOG_FORMAT": "json",
        "OPS_API_KEY": "bench",
        "DB_POOL_SIZE": "10",
        # The webhooks phase's receiver, on loopback.
        "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
        "WEBHOOK_ALLOWED_PORTS": str(receiver_port),
    }
    stack = Stack(folder / "logs", env)
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}, "smoke": smoke}
    try:
        stack.fake("fakes.gateway", gateway_port, "--latency-ms", "50")
        options = ("--workers", "2", "--no-access-log", "--log-level", "warning")
        stack.api(api_port, "bench.app:app", *options)
        stack.ready()
        sampler = RssSampler({"api": stack.named("api").pid})
        sampler.start()
        procs = snapshot()
        roots = {"api": stack.named("api").pid, "gateway": stack.named("gateway").pid}
        roots |= service_roots(procs)

        phase("checkout, open loop")
        seconds = 2 if smoke else 10
        openloop(f"{api}/orders", 20 if smoke else 50, 2 if smoke else 3, roots)  # warm-up
        results["checkout_open_loop"] = []
        for rate in [20] if smoke else [50, 100, 200, 400, 800]:
            result = openloop(f"{api}/orders", rate, seconds, roots)
            results["checkout_open_loop"].append(result)
            if not within_budget(result):
                break  # saturated: a higher offered rate only queues and sheds more
        settle(roots)
        # A rate the service sustains, with an instant gateway: what the service itself adds.
        set_gateway_latency(gateway, 0)
        results["checkout_gateway_0ms"] = openloop(
            f"{api}/orders", 20 if smoke else 100, seconds, roots
        )
        # The floor at the same rate: CPU per request falls as the rate rises (fixed costs
        # spread), so the two are compared at one rate.
        results["insert_floor_same_rate"] = openloop(
            f"{api}/_bench/insert", 20 if smoke else 100, seconds, roots
        )
        # What any checkout that keeps the guarantees pays at the least (see bench.app).
        results["bare_checkout_same_rate"] = openloop(
            f"{api}/_bench/bare-checkout", 20 if smoke else 100, seconds, roots
        )
        set_gateway_latency(gateway, 50)
        settle(roots)
        cold, warm = asyncio.run(
            checkout_round_trips(ApiSettings(database_url=db_url, payment_gateway="sandbox"))
        )
        results["round_trips_per_checkout"] = {
            "count": warm.count,
            "statements": warm.statements,
            "prices_not_kept": {"count": cold.count, "statements": cold.statements},
        }

        phase("capacity at p99")
        step_s, refine = (2, 0) if smoke else (6, 3)
        orders_cap, orders_steps = capacity(
            api, "/orders", (20, 20) if smoke else (50, 6400), step_s, refine, roots
        )
        openloop(f"{api}/_bench/insert", 20 if smoke else 100, 2 if smoke else 3, roots)
        insert_cap, insert_steps = capacity(
            api, "/_bench/insert", (20, 20) if smoke else (200, 6400), step_s, refine, roots
        )
        bare_cap, bare_steps = capacity(
            api, "/_bench/bare-checkout", (20, 20) if smoke else (50, 6400), step_s, refine, roots
        )
        results["capacity"] = {
            "orders_rps_at_p99_within_budget": orders_cap,
            "insert_floor_rps_at_p99_within_budget": insert_cap,
            "bare_checkout_rps_at_p99_within_budget": bare_cap,
            "ratio": round(orders_cap / insert_cap, 2) if orders_cap and insert_cap else None,
            "bare_ratio": round(bare_cap / insert_cap, 2) if bare_cap and insert_cap else None,
            "orders_steps": orders_steps,
            "insert_steps": insert_steps,
            "bare_steps": bare_steps,
        }
        phase("naive: the invoice rendered in the request")
        results["naive_render_in_request"] = openloop(
            f"{api}/_bench/naive-order", 1 if smoke else 2, 2 if smoke else 8, roots
        )

        phase("streams: order streams held open on one API process while checkouts run")
        results["streams"] = streams_phase(
            stack, 50 if smoke else 1000, 20 if smoke else 50, 2 if smoke else 10
        )

        # The pipeline: now the relay and the workers run; earlier orders are set aside.
        with psycopg.connect(libpq_url(db_url), autocommit=True) as conn:
            conn.execute("UPDATE outbox SET published_at = now() WHERE published_at IS NULL")
            # ...their orders too: else the relay's stall sweep would find them pending and
            # enqueue them again in the middle of a later phase (seen: a burst drained them).
            conn.execute("""UPDATE "order" SET status = 'cancelled' WHERE status = 'pending'""")
            # The checkout phases left thousands of rows and these updates dead ones: vacuumed
            # now, so autovacuum's work on them is not counted as the pipeline's PostgreSQL CPU.
            conn.execute("VACUUM ANALYZE")
        metrics_dir = folder / "metrics"
        metrics_dir.mkdir(parents=True, exist_ok=True)
        stack.env |= {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
        relay = stack.relay().wait_ready()
        sampler.add("relay", relay.pid)
        roots["relay"] = relay.pid
        count = 5 if smoke else 300
        flows = []
        for layout_name, layout in LAYOUTS.items():
            phase(f"pipeline, {layout_name}")
            start_workers(stack, layout)
            layout_roots = roots | {name: stack.named(name).pid for name, _, _ in layout}
            for name, _, _ in layout:
                sampler.add(name, stack.named(name).pid)
            with cpu_spent(layout_roots) as spent:
                flow = pipeline(api, db_url, count, 120 if smoke else 400)
            flow["cpu_ms_per_order"] = {k: round(1000 * v / count, 1) for k, v in spent.items()}
            flows.append({"layout": layout_name, "workers": layout} | flow)
            for name, _, _ in layout:
                sampler.last(name)
            stack.stop({name for name, _, _ in layout})
        render_s = median_render_s(3 if smoke else 10)
        for flow in flows:
            limit = render_processes(flow["workers"]) / render_s
            flow |= {
                "render_processes": render_processes(flow["workers"]),
                "render_limit_per_s": round(limit, 2),
                "share_of_render_limit": round(flow["completed_per_s"] / limit, 2),
            }
        results["pipeline"] = {"median_render_ms": round(render_s * 1000, 1), "layouts": flows}
        results["memory"] = sampler.report()

        # A steady 5 orders/s, open loop, on the split layout: 202 -> completed when nothing queues.
        phase("steady")
        split = LAYOUTS["split"]
        start_workers(stack, split)
        rate, seconds = (2, 2) if smoke else (5, 30)
        results["steady"] = steady(api, db_url, rate, seconds, 120 if smoke else 300)
        stack.stop({name for name, _, _ in split})

        phase("pipeline with webhooks: an endpoint on every event of an order")
        results["webhooks"] = webhooks_phase(
            stack, api, db_url, roots, receiver_port, 5 if smoke else 300
        )

        # A burst far beyond the workers' pace, first in first out and then with the steps
        # queue's priorities: when do the orders already on their way complete?
        count = 20 if smoke else 1000
        results["burst"] = []
        for mode in ("fifo", "priorities"):
            phase(f"burst, {mode}")
            stack.stop({"relay"})
            stack.env["STEP_PRIORITIES"] = str(mode == "priorities").lower()
            stack.relay().wait_ready()
            start_workers(stack, split)
            flow = pipeline(api, db_url, count, 120 if smoke else 900)
            results["burst"].append({"mode": mode, "workers": split} | flow)
            stack.stop({name for name, _, _ in split})

        phase("stock import: a generated CSV uploaded, imported, against psql \\copy")
        results["imports"] = imports_phase(
            stack, api, db_url, roots, 5 if smoke else 500, 2 if smoke else 10
        )
    finally:
        stack.stop()
    return results


def webhooks_phase(
    stack: Stack, api: str, db_url: str, roots: dict[str, int], port: int, count: int
) -> dict[str, Any]:
    """The split layout's burst again, with an endpoint on a fake receiver subscribed to all five
    events of an order: the CPU per order with its webhooks delivered (the receiver's not
    counted: it stands for the shop's partner). The endpoint is deleted after."""
    stack.fake("fakes.receiver", port)
    endpoint = subscribe(api, f"http://127.0.0.1:{port}/bench", "bench")
    split = LAYOUTS["split"]
    start_workers(stack, split)
    layout_roots = roots | {name: stack.named(name).pid for name, _, _ in split}
    started = time.perf_counter()
    with cpu_spent(layout_roots) as spent:
        flow = pipeline(api, db_url, count, 120 if count < 20 else 400)
        deliveries = count * len(ORDER_EVENTS)
        delivered(db_url, deliveries, 120 if count < 20 else 400)
    flow["deliveries"] = deliveries
    flow["delivered_per_s"] = round(deliveries / (time.perf_counter() - started), 1)
    flow["cpu_ms_per_order"] = {k: round(1000 * v / count, 1) for k, v in spent.items()}
    stack.stop({name for name, _, _ in split} | {"receiver"})
    headers = {"X-API-Key": "bench"}
    httpx.delete(f"{api}/ops/webhook-endpoints/{endpoint}", headers=headers).raise_for_status()
    return flow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    exit_on_sigterm()
    started = time.monotonic()
    results = run(args.smoke)
    results["wall_time_s"] = round(time.monotonic() - started, 1)
    print_table(results)
    print_imports(results["imports"])
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}{'-smoke' if args.smoke else ''}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"\nwritten to {path.relative_to(ROOT)} in {results['wall_time_s']} s")


if __name__ == "__main__":
    main()
