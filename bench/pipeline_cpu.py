"""The pipeline alone, for comparing two commits: the split layout of `make bench`, a burst of
orders, CPU per order of each process tree (and of each worker's parent alone) from /proc.

    python -m bench.pipeline_cpu --orders 300 [--webhooks]

A fresh bench database, the API (2 uvicorn workers), the fake gateway at 50 ms, the relay and
the split layout's workers; 20 orders to warm up, VACUUM ANALYZE, then the burst. Prints one
JSON line. Run it for two commits alternated (machines drift by the hour).

--webhooks: an endpoint on a fake receiver subscribes to every event of an order (five an
order), and the burst waits until each of them is delivered too. The receiver's CPU is printed
apart, not in the total: it stands for the shop's partner.
"""

import argparse
import json

import psycopg

from bench.flows import LAYOUTS, ORDER_EVENTS, delivered, pipeline, start_workers, subscribe
from bench.procs import TICK_S, cpu_spent, service_roots, snapshot
from bench.profile_workers import DB_URL, profiled_stack
from bench.task_cost import BROKER_URL
from orders.db import libpq_url
from stack.processes import free_port
from stack.services import empty_queues


def own_cpu_s(pids: dict[str, int]) -> dict[str, float]:
    """Each process's own user + system time, without its children's: one look at /proc."""
    procs = snapshot()
    return {name: procs[pid].own_ticks * TICK_S for name, pid in pids.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--webhooks", action="store_true", help="an endpoint for every event")
    args = parser.parse_args()
    count = args.orders
    empty_queues(BROKER_URL)
    gateway, port, receiver = free_port(), free_port(), free_port()
    api = f"http://127.0.0.1:{port}"
    env = {"BROKER_URL": BROKER_URL, "DB_POOL_SIZE": "10"}
    env |= {"WEBHOOK_ALLOWED_HOSTS": "127.0.0.1", "WEBHOOK_ALLOWED_PORTS": str(receiver)}
    stack = profiled_stack(gateway, env)
    try:
        stack.fake("fakes.gateway", gateway, "--latency-ms", "50")
        if args.webhooks:
            stack.fake("fakes.receiver", receiver)
        options = ("--workers", "2", "--no-access-log", "--log-level", "warning")
        stack.api(port, "bench.app:app", *options)
        stack.ready()
        if args.webhooks:
            subscribe(api, f"http://127.0.0.1:{receiver}/bench", "bench")
        procs = snapshot()
        roots = {"api": stack.named("api").pid, "gateway": stack.named("gateway").pid}
        roots |= service_roots(procs)
        roots["relay"] = stack.relay().wait_ready().pid
        layout = LAYOUTS["split"]
        start_workers(stack, layout)
        parents = {name: stack.named(name).pid for name, _, _ in layout}
        roots |= parents
        if args.webhooks:
            roots["receiver"] = stack.named("receiver").pid
        pipeline(api, DB_URL, 20, 120)
        delivered(DB_URL, 20 * len(ORDER_EVENTS) if args.webhooks else 0, 120)
        with psycopg.connect(libpq_url(DB_URL), autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
        before = own_cpu_s(parents)
        with cpu_spent(roots) as spent:
            flow = pipeline(api, DB_URL, count, 400)
            delivered(DB_URL, (20 + count) * len(ORDER_EVENTS) if args.webhooks else 0, 400)
        ms = {name: round(1000 * s / count, 1) for name, s in spent.items()}
        partner = {"receiver": ms.pop("receiver")} if args.webhooks else {}
        ms["total"] = round(sum(ms.values()), 1)
        ms |= partner
        after = own_cpu_s(parents)
        for name in parents:
            ms[f"{name} parent"] = round(1000 * (after[name] - before[name]) / count, 1)
        print(json.dumps({"completed_per_s": flow["completed_per_s"], "cpu_ms_per_order": ms}))
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
