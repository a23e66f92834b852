"""Where the workers' CPU goes: py-spy samples the relay and every worker (its main process and
each pool child) while a burst of
orders runs through the split layout (a render process per CPU, two step processes), then prints the heaviest
functions of each, by the share of samples they are on the stack of (inclusive) and at the top
of (self).

    python -m bench.profile_workers --orders 300

Needs py-spy on PATH (`pip install py-spy`) and ptrace rights (root, or ptrace_scope 0).
"""

import argparse
import asyncio
import collections
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg

from bench.flows import LAYOUTS, place_burst, start_workers
from bench.procs import snapshot, tree
from orders.db import libpq_url
from stack.processes import ROOT, Stack, free_port
from stack.services import empty_queues, fresh_database

OUT = ROOT / ".bench" / "profiles"
DB_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/orders_bench"


def profiled_stack(gateway_port: int, env: dict[str, str] | None = None) -> Stack:
    """A fresh bench database with stock for any burst, and a Stack whose processes use it and
    the fake gateway on `gateway_port`."""
    fresh_database(DB_URL)
    with psycopg.connect(libpq_url(DB_URL), autocommit=True) as conn:
        conn.execute("UPDATE product SET stock_on_hand = 1000000000")
    OUT.mkdir(parents=True, exist_ok=True)
    base = {
        "DATABASE_URL": DB_URL,
        "PAYMENT_GATEWAY": "http",
        "PAYMENT_GATEWAY_URL": f"http://127.0.0.1:{gateway_port}",
        "LOG_FORMAT": "json",
        "OPS_API_KEY": "bench",
    }
    return Stack(ROOT / ".bench" / "logs", base | (env or {}))


def spy(pid: int, raw: Path, rate: int) -> "subprocess.Popen[bytes]":
    """py-spy sampling `pid` into `raw` until sent SIGINT."""
    command = ["py-spy", "record", "--pid", str(pid), "--rate", str(rate)]
    command += ["--format", "raw", "--output", str(raw), "--nonblocking"]
    return subprocess.Popen(command, stderr=subprocess.DEVNULL)


def children(pid: int) -> list[int]:
    return sorted(tree(pid, snapshot()) - {pid})


def samples(raw: Path) -> Iterator[tuple[list[str], int]]:
    """py-spy's raw output: each stack (outermost frame first) and how many samples it had."""
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if count.isdigit():  # the output holds an odd garbled line
            yield stack.split(";"), int(count)


def summarise(raw: Path, top: int) -> None:
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for stack, n in samples(raw):
        frames = [f.split(" (")[0] + " (" + f.split(" (")[-1] for f in stack]
        total += n
        for frame in set(frames):
            inclusive[frame] += n
        own[frames[-1]] += n
    print(f"\n{raw.stem}: {total} samples")
    for name, n in inclusive.most_common(top):
        print(f"  {100 * n / total:5.1f} %  incl  {name}")
    for name, n in own.most_common(top // 2):
        print(f"  {100 * n / total:5.1f} %  self  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    if shutil.which("py-spy") is None:
        raise SystemExit("py-spy is not on PATH: pip install py-spy")
    broker_url = "amqp://guest:guest@127.0.0.1:5672//"
    empty_queues(broker_url)
    gateway_port, api_port = free_port(), free_port()
    stack = profiled_stack(gateway_port, {"BROKER_URL": broker_url})
    spies: list[tuple[subprocess.Popen[bytes], Path]] = []
    try:
        stack.fake("fakes.gateway", gateway_port)
        stack.api(api_port, "orders.main:app", "--no-access-log", "--log-level", "warning")
        stack.relay()
        layout = LAYOUTS["split"]
        start_workers(stack, layout)
        targets = [("relay", stack.named("relay").pid)]
        for name, _, _ in layout:
            parent = stack.named(name).pid
            targets += [(f"{name}-parent", parent)]
            targets += [(name, child) for child in children(parent)]
        for name, pid in targets:
            raw = OUT / f"{name}-{pid}.txt"
            spies.append((spy(pid, raw, rate=250), raw))
        time.sleep(2)
        started = time.perf_counter()
        ids = asyncio.run(place_burst(f"http://127.0.0.1:{api_port}", args.orders))
        with psycopg.connect(libpq_url(DB_URL), autocommit=True) as conn:
            while True:
                row = conn.execute(
                    'SELECT count(*) FROM "order" WHERE id = ANY(%s::uuid[])'
                    " AND status = 'completed'",
                    (ids,),
                ).fetchone()
                if (row and row[0] == len(ids)) or time.perf_counter() - started > 600:
                    break
                time.sleep(0.5)
        print(f"{args.orders} orders completed in {time.perf_counter() - started:.1f} s")
    finally:
        for sampler, _ in spies:
            sampler.send_signal(signal.SIGINT)
        for sampler, _ in spies:
            sampler.wait(timeout=60)
        stack.stop()
    for _, raw in spies:
        if raw.exists() and os.path.getsize(raw):
            summarise(raw, args.top)


if __name__ == "__main__":
    main()
