"""Checkout under load: open-loop runs at a fixed rate, each in a process of its own, and the
search for the highest rate whose p99 stays within the 500 ms budget."""

import json
import subprocess
import sys
import time
from typing import Any

from bench.procs import cpu_spent
from bench.table import BUDGET_MS
from stack.processes import ROOT


def openloop(url: str, rate: float, seconds: float, roots: dict[str, int]) -> dict[str, Any]:
    """One fixed-rate run in a process of its own, so its CPU use can be reported; with the CPU
    time each part of the stack (`roots`) spent per answered request."""
    args = ["--url", url, "--rate", str(rate), "--seconds", str(seconds)]
    with cpu_spent(roots) as spent:
        out = subprocess.run(
            [sys.executable, "-m", "bench.openloop", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["cpu_ms_per_request"] = {
        name: round(1000 * s / max(1, result["ok"]), 2) for name, s in spent.items()
    }
    return result


def within_budget(result: dict[str, Any]) -> bool:
    errors = sum(result["errors"].values())
    return bool(
        result["p99_ms"] is not None
        and result["p99_ms"] <= BUDGET_MS
        and errors <= 0.01 * result["sent"]
    )


def settle(roots: dict[str, int], timeout_s: float = 30) -> None:
    """After an overloaded step, wait until the stack has worked off its backlog: until the API's
    processes and PostgreSQL's together spend under 5 % of a CPU over half a second. A liveness
    probe answered quickly was not enough: it reached one of the API's workers while the other
    still worked through requests its clients had given up on, and the next step paid for them."""
    watched = {name: pid for name, pid in roots.items() if name in ("api", "postgres")}
    window_s, idle_share = 0.5, 0.05
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with cpu_spent(watched) as spent:
            time.sleep(window_s)
        if sum(spent.values()) < idle_share * window_s:
            return
    print(f"  (still busy {timeout_s:.0f} s after an overloaded step; going on)", file=sys.stderr)


def capacity(
    api: str,
    path: str,
    rates: tuple[float, float],
    seconds: float,
    refine: int,
    roots: dict[str, int],
) -> tuple[float | None, list[dict[str, Any]]]:
    """The highest offered rate whose p99 stays within the budget: double the rate from the first
    of `rates` until one fails (or passes the second), then halve the gap between the last good
    and the first bad rate `refine` times."""
    best: float | None = None
    worst: float | None = None
    steps: list[dict[str, Any]] = []

    def probe(rate: float) -> bool:
        result = openloop(f"{api}{path}", rate, seconds, roots)
        steps.append(result)
        if within_budget(result):
            return True
        settle(roots)
        return False

    rate, highest = rates
    while rate <= highest:
        if not probe(rate):
            worst = rate
            break
        best, rate = rate, rate * 2
    for _ in range(refine):
        if worst is None:
            break  # nothing failed up to the highest rate
        middle = round(((best or 0) + worst) / 2)
        if middle in (best, worst):
            break
        if probe(middle):
            best = middle
        else:
            worst = middle
    return best, steps
