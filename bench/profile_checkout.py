"""Where a checkout's CPU goes: py-spy samples one uvicorn process (orders.main:app, no workers)
while `bench.openloop` places orders at a fixed rate, then prints the CPU per answered request
(from /proc), PostgreSQL's split by the role of each of its processes, and the heaviest
functions, grouped by the part of the stack they belong to.

    python -m bench.profile_checkout --rate 60 --seconds 20

Needs py-spy on PATH (`pip install py-spy`) and ptrace rights (root, or ptrace_scope 0).
"""

import argparse
import collections
import shutil
import signal
from pathlib import Path

import psycopg

from bench.capacity import openloop
from bench.procs import TICK_S, Proc, service_root, snapshot, tree
from bench.profile_workers import DB_URL, OUT, profiled_stack, samples, spy, summarise
from orders.db import libpq_url
from stack.processes import free_port

# The first frame (from the top of the stack down) that matches names the sample's part.
PARTS = [
    (
        "gateway client (aiohttp)",
        ("aiohttp/", "yarl/", "multidict/", "orders/card_authorizer.py", "orders/payments.py"),
    ),
    ("after the response (audit, email, ping)", ("aftercare", "background.py", "telemetry.py")),
    ("driver (psycopg)", ("psycopg/",)),
    ("SQLAlchemy", ("sqlalchemy/", "sqlmodel/")),
    ("validation (pydantic)", ("pydantic", "orders/api/schemas.py")),
    ("JSON", ("json/", "orjson")),
    ("middleware", ("orders/api/middleware.py", "orders/api/gates.py", "prometheus_client")),
    ("FastAPI routing and dependencies", ("fastapi/", "starlette/")),
    ("HTTP server (uvicorn)", ("uvicorn/", "httptools")),
    ("event loop", ("asyncio/", "uvloop")),
]


def part_of(frames: list[str]) -> str:
    for frame in reversed(
        frames
    ):  # innermost first: a driver call inside SQLAlchemy is the driver's
        for name, needles in PARTS:
            if any(n in frame for n in needles):
                return name
    return "other"


def postgres_roles() -> dict[int, str]:
    """What each PostgreSQL process is for: the API's pooled backends, its LISTEN connections
    (orders.api.live), autovacuum, or the server's own (WAL writer, checkpointer, ...)."""
    with psycopg.connect(libpq_url(DB_URL), autocommit=True) as conn:
        rows = conn.execute("SELECT pid, backend_type, application_name FROM pg_stat_activity")
        roles = {}
        for pid, backend_type, application in rows:
            if application.startswith("orders-api-listen"):
                roles[pid] = "the API's LISTEN backends"
            elif application.startswith("orders-api"):
                roles[pid] = "the API's pooled backends"
            elif backend_type.startswith("autovacuum"):
                roles[pid] = "autovacuum"
    return roles


def postgres_by_role(
    postmaster: int, before: dict[int, Proc], after: dict[int, Proc], requests: int
) -> dict[str, float]:
    """PostgreSQL's CPU ms per request between two snapshots, by role. A process that ended
    in between (a connection closed, an autovacuum worker done) is counted as such."""
    roles, spent = postgres_roles(), collections.Counter[str]()
    members = tree(postmaster, after)
    for pid in members:
        ticks = after[pid].own_ticks - (before[pid].own_ticks if pid in before else 0)
        spent[roles.get(pid, "the server's own")] += ticks  # the postmaster is the server's
    whole = sum(after[p].cpu_ticks for p in members) - sum(
        before[p].cpu_ticks for p in tree(postmaster, before)
    )
    spent["processes that ended meanwhile"] += whole - sum(spent.values())
    return {role: round(1000 * n * TICK_S / requests, 3) for role, n in spent.most_common() if n}


def by_part(raw: Path) -> None:
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for stack, n in samples(raw):
        counts[part_of(stack)] += n
        total += n
    print(f"\nby part ({total} samples; the innermost frame that names a part decides)")
    for name, n in counts.most_common():
        print(f"  {100 * n / total:5.1f} %  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=60)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--gateway-ms", type=int, default=50)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--no-profile", action="store_true", help="only the CPU per request")
    parser.add_argument(
        "--floor", action="store_true", help="the insert-one-row floor (bench.app) instead"
    )
    args = parser.parse_args()
    if not args.no_profile and shutil.which("py-spy") is None:
        raise SystemExit("py-spy is not on PATH: pip install py-spy")
    gateway_port, api_port = free_port(), free_port()
    stack = profiled_stack(gateway_port)
    raw = OUT / "checkout-api.txt"
    try:
        stack.fake("fakes.gateway", gateway_port, "--latency-ms", str(args.gateway_ms))
        app, path = (
            ("bench.app:app", "/_bench/insert") if args.floor else ("orders.main:app", "/orders")
        )
        api = stack.api(api_port, app, "--no-access-log", "--log-level", "warning")
        stack.ready()
        url = f"http://127.0.0.1:{api_port}{path}"
        postmaster = service_root("postgres", snapshot())
        roots = {"api": api.pid} | ({"postgres": postmaster} if postmaster else {})
        openloop(url, args.rate, 3, roots)  # warm-up
        sampler = None if args.no_profile else spy(api.pid, raw, rate=500)
        before = snapshot()
        result = openloop(url, args.rate, args.seconds, roots)
        pg_roles = (
            postgres_by_role(postmaster, before, snapshot(), result["ok"]) if postmaster else {}
        )
        if sampler is not None:
            sampler.send_signal(signal.SIGINT)
            sampler.wait(timeout=60)
    finally:
        stack.stop()
    cpu = result["cpu_ms_per_request"]
    print(
        f"{result['ok']} requests to {path} at {args.rate}/s, p50 {result['p50_ms']} ms, p99"
        f" {result['p99_ms']} ms, errors {result['errors']}; CPU ms per request: api"
        f" {cpu['api']}, postgres {cpu.get('postgres')}"
    )
    print("PostgreSQL's, by role: " + ", ".join(f"{k} {v}" for k, v in pg_roles.items()))
    if sampler is not None:
        by_part(raw)
        summarise(raw, args.top)


if __name__ == "__main__":
    main()
