"""`make bench` in its seconds-long mode: the stack comes up, every phase runs, the table and the
JSON come out. (Figures are printed, never asserted: speed is measured, not tested.)"""

import json
import os
import sys
from pathlib import Path

import pytest

from stack.processes import ROOT
from tests.helpers import run_to_end, sibling_database, vhost


@pytest.mark.slow
def test_bench_smoke_prints_the_table_and_writes_the_json():
    before = set(Path(ROOT, "bench", "results").glob("*.json"))
    env = os.environ | {
        "BENCH_DATABASE_URL": sibling_database("orders_bench_test"),
        "BENCH_BROKER_URL": vhost("orders_bench_test"),
    }
    code, output = run_to_end([sys.executable, "-m", "bench.run", "--smoke"], env, 600)
    assert code == 0, output[-6000:]
    headings = (
        "checkout, open loop",
        "capacity at p99",
        "naive",
        "pipeline:",
        "burst:",
        "memory api",
        "targets (split layout",
        "steady",
        "streams:",
        "stock import:",
    )
    for heading in headings:
        assert heading in output
    written = set(Path(ROOT, "bench", "results").glob("*-smoke.json")) - before
    assert len(written) == 1
    results = json.loads(written.pop().read_text())
    assert results["smoke"] is True
    layouts = {flow["layout"]: flow for flow in results["pipeline"]["layouts"]}
    assert set(layouts) == {"split", "one pool"}
    for flow in layouts.values():
        assert flow["orders"] == 5
        assert flow["completed_per_s"] > 0
        assert flow["render_limit_per_s"] > 0
    assert layouts["split"]["render_processes"] == os.cpu_count()
    bursts = {burst["mode"]: burst for burst in results["burst"]}
    assert set(bursts) == {"fifo", "priorities"}
    for burst in bursts.values():
        assert burst["orders"] == 20
        # The first completion comes after the burst began and before the last.
        assert 0 < burst["first_completed_after_ms"] < burst["all_completed_after_s"] * 1000
    assert layouts["one pool"]["render_processes"] == 2
    steady = results["steady"]
    assert steady["orders"] == round(steady["offered_rate"] * steady["seconds"])
    assert 0 < steady["p50_202_to_completed_ms"] <= steady["p95_202_to_completed_ms"]
    assert results["checkout_open_loop"][0]["ok"] > 0
    assert results["checkout_gateway_0ms"]["ok"] > 0
    assert results["bare_checkout_same_rate"]["ok"] > 0
    assert results["capacity"]["bare_steps"][0]["ok"] > 0
    assert {"api", "relay", "render", "steps", "worker"} <= set(results["memory"])
    streams = results["streams"]
    assert streams["opened"] == streams["streams"] == 50  # every stream answered 200
    assert streams["rss_with_streams_mb"] > 0
    assert streams["p99_without_ms"] is not None
    assert streams["p99_with_ms"] is not None
    imported = results["imports"]
    assert imported["import"]["status"] == "done"
    assert imported["import"]["rows"] == imported["rows"] > 0
    assert imported["import"]["failed"] == 0
    assert imported["psql_copy_rows_per_s"] > 0
    assert imported["last_byte_to_202_ms"] > 0
