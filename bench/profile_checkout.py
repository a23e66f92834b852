"""Where a checkout's CPU goes: py-spy samples one uvicorn process (orders.main:app, no workers)
while `bench.openloop` places orders at a fixed rate, then prints the CPU per answered request
(from /proc) and the heaviest functions, grouped by the part of the stack they belong to.

    python -m bench.profile_checkout --rate 60 --seconds 20

Needs py-spy on PATH (`pip install py-spy`) and ptrace rights (root, or ptrace_scope 0).
"""

import argparse
import collections
import shutil
import signal
import subprocess
from pathlib import Path

import psycopg

from bench.capacity import openloop
from bench.procs import service_root, snapshot
from bench.profile_workers import summarise
from orders.db import libpq_url
from stack.processes import ROOT, Stack, free_port
from stack.services import fresh_database

OUT = ROOT / ".bench" / "profiles"

# The first frame (from the top of the stack down) that matches names the sample's part.
PARTS = [
    ("gateway client (httpx)", ("httpx/", "httpcore/", "orders/payments.py")),
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


def by_part(raw: Path) -> None:
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():  # py-spy's raw output holds an odd garbled line
            continue
        counts[part_of(stack.split(";"))] += int(count)
        total += int(count)
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
    db_url = "postgresql+psycopg://postgres@127.0.0.1:5432/orders_bench"
    fresh_database(db_url)
    with psycopg.connect(libpq_url(db_url), autocommit=True) as conn:
        conn.execute("UPDATE product SET stock_on_hand = 1000000000")
    gateway_port, api_port = free_port(), free_port()
    env = {
        "DATABASE_URL": db_url,
        "PAYMENT_GATEWAY": "http",
        "PAYMENT_GATEWAY_URL": f"http://127.0.0.1:{gateway_port}",
        "LOG_FORMAT": "json",
        "OPS_API_KEY": "bench",
    }
    OUT.mkdir(parents=True, exist_ok=True)
    stack = Stack(ROOT / ".bench" / "logs", env)
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
        spy = None
        if not args.no_profile:
            command = ["py-spy", "record", "--pid", str(api.pid), "--rate", "500"]
            command += ["--format", "raw", "--output", str(raw), "--nonblocking"]
            spy = subprocess.Popen(command, stderr=subprocess.DEVNULL)
        result = openloop(url, args.rate, args.seconds, roots)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
    finally:
        stack.stop()
    cpu = result["cpu_ms_per_request"]
    print(
        f"{result['ok']} requests to {path} at {args.rate}/s, p50 {result['p50_ms']} ms, p99"
        f" {result['p99_ms']} ms, errors {result['errors']}; CPU ms per request: api"
        f" {cpu['api']}, postgres {cpu.get('postgres')}"
    )
    if spy is not None:
        by_part(raw)
        summarise(raw, args.top)


if __name__ == "__main__":
    main()
