"""`make bench`'s streams phase: N order streams held open on one API process of their own while
checkouts run against it. The API's resident memory before and with the streams open (growth
per stream), and checkout p99 at the same offered rate without and then with them."""

import asyncio
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.capacity import openloop, settle
from bench.procs import snapshot, tree
from stack.processes import ROOT, Stack, free_port
from stack.samples import make_cart


async def place(api: str, count: int) -> list[dict[str, str]]:
    limit = asyncio.Semaphore(16)
    async with httpx.AsyncClient(base_url=api, timeout=30) as client:

        async def one() -> dict[str, str]:
            async with limit:
                headers = {"Idempotency-Key": str(uuid.uuid4())}
                r = await client.post("/orders", json=make_cart(), headers=headers)
                r.raise_for_status()
                body = r.json()
                return {"stream_url": body["stream_url"], "access_token": body["access_token"]}

        return await asyncio.gather(*(one() for _ in range(count)))


def rss_mb(pid: int) -> float:
    procs = snapshot()
    return sum(procs[p].rss_kb for p in tree(pid, procs)) / 1024


def streams_phase(stack: Stack, count: int, rate: float, seconds: float) -> dict[str, Any]:
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    process = stack.api(
        port, "bench.app:app", "--no-access-log", "--log-level", "warning", name="api-streams"
    )
    process.wait_ready()
    roots = {"api": process.pid}
    try:
        orders = asyncio.run(place(api, count))  # pending: no relay or worker runs now
        settle(roots)
        openloop(f"{api}/orders", rate, 2, roots)  # warm-up
        without = openloop(f"{api}/orders", rate, seconds, roots)
        settle(roots)
        before_mb = rss_mb(process.pid)
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
            json.dump(orders, file)
        hold_s = seconds + 60
        holder = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.streams",
                "--api",
                api,
                "--orders",
                file.name,
                "--hold",
                str(hold_s),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None
            line = holder.stdout.readline().strip()  # "open N", once every stream answered
            opened = int(line.split()[1]) if line.startswith("open ") else 0
            time.sleep(2)
            with_mb = rss_mb(process.pid)
            with_streams = openloop(f"{api}/orders", rate, seconds, roots)
        finally:
            holder.terminate()
            holder.wait(timeout=30)
            Path(file.name).unlink(missing_ok=True)
    finally:
        stack.stop({process.name})
    p99_without, p99_with = without["p99_ms"], with_streams["p99_ms"]
    return {
        "streams": count,
        "opened": opened,
        "offered_rate": rate,
        "seconds": seconds,
        "rss_before_mb": round(before_mb, 1),
        "rss_with_streams_mb": round(with_mb, 1),
        "kb_per_stream": round((with_mb - before_mb) * 1024 / max(1, opened), 1),
        "p99_without_ms": p99_without,
        "p99_with_ms": p99_with,
        "p99_change_pct": round(100 * (p99_with - p99_without) / p99_without, 1)
        if p99_without and p99_with
        else None,
        "errors_without": sum(without["errors"].values()),
        "errors_with": sum(with_streams["errors"].values()),
    }
