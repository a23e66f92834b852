"""The 500 ms rule made visible: Server-Timing, the budget, /metrics, ops status endpoints, and one
request id followed from the API through the relay to the worker's logs."""

import asyncio
import json
import logging
import time

import httpx
import pytest

from orders.messages import QUEUES, STEP_TASKS
from orders.states import CONTINUES_IN_TASK
from stack.processes import free_port
from stack.samples import make_cart
from tests.helpers import OPS, new_key, place, running_app, settle


async def test_every_response_carries_server_timing_and_a_request_id(client):
    started = time.perf_counter()
    response = await client.get("/products", headers={"X-Request-ID": "abc-123"})
    elapsed_ms = (time.perf_counter() - started) * 1000
    assert response.headers["x-request-id"] == "abc-123"
    name, _, duration = response.headers["server-timing"].partition(";dur=")
    assert name == "app"
    # The app's own time: some, and no more than the client saw around it.
    assert 0 < float(duration) <= elapsed_ms
    generated = await client.get("/products", headers={"X-Request-ID": "bad id with spaces"})
    assert len(generated.headers["x-request-id"]) == 32


async def test_requests_over_the_budget_are_logged_and_counted(
    db, test_settings, caplog: pytest.LogCaptureFixture
):
    async with running_app(test_settings(request_budget_ms=0)) as client:
        with caplog.at_level(logging.WARNING, logger="orders.budget"):
            await client.get("/products")
        metrics = (await client.get("/metrics", headers=OPS)).text
    assert "GET /products took" in caplog.text
    assert 'orders_http_over_budget_total{method="GET",route="/products"}' in metrics


async def test_metrics_show_latency_per_route_orders_by_status_and_outbox_lag(client, db):
    await client.post("/orders", json=make_cart(), headers=new_key())
    db.execute("UPDATE outbox SET created_at = now() - interval '90 seconds'")  # unpublished
    metrics = (await client.get("/metrics", headers=OPS)).text
    assert (
        'orders_http_request_duration_seconds_bucket{le="0.5",method="POST",route="/orders",status="202"}'
        in metrics
    )
    assert 'orders_by_status{status="pending"} 1.0' in metrics
    lag = next(
        line for line in metrics.splitlines() if line.startswith("orders_outbox_lag_seconds")
    )
    assert 90 <= float(lag.split()[-1]) < 120


async def test_ops_endpoints_and_metrics_need_the_key(client):
    for path in ("/ops/summary", "/ops/orders", "/metrics"):
        response = await client.get(path)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"


def test_metrics_port_serves_every_uvicorn_worker_without_the_key(processes, tmp_path):
    """METRICS_PORT for an internal network: no key there, and with PROMETHEUS_MULTIPROC_DIR the
    counts of both uvicorn workers summed, whichever answers; the public port still wants it."""
    api_port, metrics_port = free_port(), free_port()
    (tmp_path / "metrics").mkdir()
    processes.env |= {
        "METRICS_PORT": str(metrics_port),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "OPS_API_KEY": OPS["X-API-Key"],
    }
    processes.api(api_port, "orders.main:app", "--workers", "2")
    processes.ready()
    api = f"http://127.0.0.1:{api_port}"
    for _ in range(40):  # a new connection each: the kernel spreads them over both workers
        httpx.get(f"{api}/products").raise_for_status()
    scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics")
    public = httpx.get(f"{api}/metrics")
    behind_key = httpx.get(f"{api}/metrics", headers=OPS)
    served = (
        'orders_http_request_duration_seconds_count{method="GET",route="/products",status="200"}'
    )
    for text in (scraped.text, behind_key.text):
        count = next(line for line in text.splitlines() if line.startswith(served))
        assert float(count.split()[-1]) == 40
        assert "orders_outbox_lag_seconds" in text
    assert scraped.status_code == 200
    assert public.status_code == 401


async def test_health_live_and_ready(client):
    live = await client.get("/health/live")
    ready = await client.get("/health/ready")
    assert live.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "database": "ok", "broker": "ok"}


async def test_ops_summary_orders_and_order_detail(db, test_settings, broker_url):
    async with running_app(test_settings(broker_url=broker_url)) as client:
        placed = [await place(client) for _ in range(3)]
        db.execute("UPDATE outbox SET created_at = now() - interval '90 seconds'")
        summary = (await client.get("/ops/summary", headers=OPS)).json()
        assert summary["orders_by_status"] == {"pending": 3}
        assert summary["orders_by_status_last_hour"] == {"pending": 3}
        assert 90 <= summary["outbox_lag_s"] < 120
        assert set(summary["queue_depths"]) == set(QUEUES)
        assert summary["failed_orders"] == 0

        first = (await client.get("/ops/orders", params={"limit": 2}, headers=OPS)).json()
        assert [o["id"] for o in first["items"]] == [placed[2]["id"], placed[1]["id"]]
        second = (
            await client.get(
                "/ops/orders", params={"limit": 2, "cursor": first["next_cursor"]}, headers=OPS
            )
        ).json()
        assert [o["id"] for o in second["items"]] == [placed[0]["id"]]
        assert second["next_cursor"] is None
        assert "access_token_hash" not in first["items"][0]
        filtered = await client.get("/ops/orders", params={"status": "failed"}, headers=OPS)
        assert filtered.json()["items"] == []

        detail = (await client.get(f"/ops/orders/{placed[0]['id']}", headers=OPS)).json()
        assert detail["order"]["status"] == "pending"
        assert [line["sku"] for line in detail["lines"]] == ["MUG-001", "NB-A5"]
        assert detail["payment"]["status"] == "authorized"
        assert [e["type"] for e in detail["events"]] == ["order.placed"]
        assert detail["invoice"] is None
        assert [a["action"] for a in detail["audit"]] == ["order.placed"]


async def test_one_request_id_follows_the_order_through_relay_and_worker(
    http_gateway_client, db, processes, tmp_path
):
    metrics_port = free_port()
    processes.env |= {
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "WORKER_METRICS_PORT": str(metrics_port),
    }
    (tmp_path / "metrics").mkdir()
    worker, relay = processes.worker(), processes.relay()
    processes.ready()
    response = await http_gateway_client.post(
        "/orders", json=make_cart(), headers=new_key() | {"X-Request-ID": "trace-me-42"}
    )
    order_id = response.json()["id"]
    await settle(db, [order_id])
    # The order completes in the render task's commit; the task's metrics follow its return.
    rendered = (
        'fulfillment_task_outcomes_total{outcome="success",task="fulfillment.render_invoice"}'
    )
    async with httpx.AsyncClient() as scraper:
        deadline = time.monotonic() + 10
        while True:
            worker_metrics = (await scraper.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
            if rendered in worker_metrics or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
    processes.stop()

    def lines_about(log: str) -> list[dict[str, str]]:
        entries = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
        return [e for e in entries if e.get("request_id") == "trace-me-42"]

    relay_lines = lines_about(relay.log())
    worker_lines = lines_about(worker.log())
    assert relay_lines
    assert all(e["order_id"] == order_id for e in relay_lines)
    tasks = {e["message"].split("[")[0] for e in worker_lines if "succeeded" in e["message"]}
    # One task per step but those that continue in the task before them.
    messages = [task for step, task in STEP_TASKS.items() if step not in CONTINUES_IN_TASK]
    assert tasks == {f"Task {task.name}" for task in messages} != set()
    assert all(e["order_id"] == order_id for e in worker_lines)
    assert f"{rendered} 1.0" in worker_metrics
    assert "fulfillment_task_duration_seconds_bucket" in worker_metrics
