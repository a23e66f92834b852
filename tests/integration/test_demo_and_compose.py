"""`make demo` end to end with a few orders, and compose.yaml checked without a Docker engine."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orders.config import Settings
from orders.messages import QUEUES, Queue
from stack.processes import ROOT
from tests.helpers import run_to_end, sibling_database, vhost


@pytest.mark.slow
@pytest.mark.parametrize("stack", ["embedded", "services"])
def test_the_demo_runs_the_whole_flow_and_stops_everything(tmp_path, stack):
    summary_path = tmp_path / "summary.json"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BROKER_URL")}
    if stack == "services":
        env |= {
            "DATABASE_URL": sibling_database("orders_demo_test"),
            "BROKER_URL": vhost("orders_demo_test"),
        }
    command = ["-m", "demo.run", "--orders", "6", "--stack", stack, "--folder", str(tmp_path)]
    code, output = run_to_end([sys.executable, *command, "--summary", str(summary_path)], env, 300)
    assert code == 0, output[-10000:]
    summary = json.loads(summary_path.read_text())

    statuses = summary["final_statuses"]
    assert statuses["cancelled"] == 1  # the out-of-stock order
    assert statuses["completed"] == summary["orders_placed"] - 2
    assert statuses["refunded"] == 1  # one order cancelled after capture
    assert summary["refund"]["credit_note"] == "CN-000001"
    assert Path(summary["refund"]["path"]).read_bytes().startswith(b"%PDF")
    assert any("declined card: 402" in note for note in summary["notes"])
    assert any("double submit: same order both times: True" in note for note in summary["notes"])
    for path, report in summary["webhooks"].items():
        assert report["received"] == report["verified"], path
    assert (
        summary["webhooks"]["flaky"]["received"] == summary["webhooks"]["flaky"]["distinct_ids"] + 2
    )
    assert summary["emails_caught"] == summary["orders_placed"]
    # One order followed on its live stream (on SQLite by polling, on PostgreSQL by NOTIFY).
    timeline = ["order.placed", "order.reserved", "order.paid", "order.invoiced", "order.completed"]
    expected = [f"{seq} {event}" for seq, event in enumerate(timeline, start=1)]
    assert summary["stream"]["events"] == expected
    assert summary["invoices_saved"] == statuses["completed"] + statuses["refunded"]
    # The stock file: every row read, three skipped with their lines (on SQLite and PostgreSQL).
    stock = summary["stock_import"]
    assert (stock["status"], stock["rows"], stock["imported"], stock["skipped"]) == (
        "done",
        50_003,
        50_000,
        3,
    )
    assert [line.split(",")[:2] for line in stock["errors"]] == [
        ["12502", "WH-BAD-PRICE"],
        ["25003", "WH-SHORT"],
        ["37504", "MUG-001"],
    ]
    assert "below the" in stock["errors"][2]
    for pid in summary["pids"]:  # nothing left running
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_compose_yaml_is_valid_and_production_shaped():
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose is missing: `make compose-tools` installs it")
    subprocess.run(
        ["docker-compose", "-f", "compose.yaml", "config", "--quiet"],
        cwd=ROOT,
        env=os.environ | {"SECRET_KEY": "check", "OPS_API_KEY": "check"},
        check=True,
    )
    compose = yaml.safe_load(Path(ROOT, "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {
        "postgres",
        "rabbitmq",
        "mailpit",
        "migrate",
        "api",
        "relay",
        "worker",
        "renderer",
        "importer",
    }
    for name in ("postgres", "rabbitmq", "mailpit", "api", "worker", "renderer", "importer"):
        assert "healthcheck" in services[name], name
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["relay"]["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
    assert "management" in services["rabbitmq"]["image"]
    # Every queue of the messaging contract is consumed, invoices by processes of their own;
    # both scale with --scale.
    queues = {
        name: services[name]["command"][services[name]["command"].index("-Q") + 1].split(",")
        for name in ("worker", "renderer", "importer")
    }
    assert queues["renderer"] == [Queue.INVOICES]
    assert queues["importer"] == [Queue.IMPORTS]
    assert sorted(q for names in queues.values() for q in names) == sorted(QUEUES)
    for name in ("worker", "renderer", "importer"):
        assert "ports" not in services[name]
    # The importer reads the files the api spooled: one volume, where IMPORT_SPOOL_DIR points.
    spool = f"spool:/app/{Settings.model_fields['import_spool_dir'].default}"
    assert spool in services["api"]["volumes"]
    assert spool in services["importer"]["volumes"]
    # Metrics on a port of their own, not published; JSON logs from every uvicorn process.
    api = services["api"]
    assert api["environment"]["METRICS_PORT"] == "9100"
    assert api["ports"] == ["8000:8000"]
    assert api["environment"]["PROMETHEUS_MULTIPROC_DIR"] in api["tmpfs"]
    assert api["command"][api["command"].index("--log-config") + 1] == "orders/logging.json"
    assert Path(ROOT, "orders/logging.json").exists()


def test_the_image_runs_as_a_non_root_user_with_weasyprint_libraries():
    dockerfile = Path(ROOT, "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile
    assert "libpango-1.0-0" in dockerfile
    assert "\nUSER app\n" in dockerfile


def test_make_worker_takes_every_queue_of_the_contract():
    makefile = Path(ROOT, "Makefile").read_text().splitlines()
    default = next(line for line in makefile if line.startswith("WORKER_QUEUES ?="))
    assert default.split("?=")[1].strip().split(",") == list(QUEUES)


def test_make_demo_installs_no_container_tools_and_compose_tools_no_engine():
    def dry_run(target: str) -> str:
        return subprocess.run(
            ["make", "-n", target], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout

    assert "docker" not in dry_run("demo")
    tools = dry_run("compose-tools")
    assert "apt-get install -y -qq --no-install-recommends docker-compose" in tools
    assert "docker.io" not in tools


def test_every_worker_command_line_runs_without_celery_heartbeat_events():
    """Celery publishes them from the loop that checks the broker's AMQP heartbeats and waits
    for their confirms without a timeout: a silent broker would stop that loop."""
    compose = yaml.safe_load(Path(ROOT, "compose.yaml").read_text())
    workers = ("worker", "renderer", "importer")
    commands = [" ".join(compose["services"][name]["command"]) for name in workers]
    worker_target = Path(ROOT, "Makefile").read_text().split("\nworker:")[1].split("\n\n")[0]
    for command in [*commands, worker_target]:
        assert "--without-heartbeat" in command, command
