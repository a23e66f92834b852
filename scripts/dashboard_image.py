"""`make docs-images`, the dashboard's picture: the real stack (uvicorn, a relay, a worker) on a
database of its own, some orders placed through the API over half a minute, one of them failed in
its capture, one webhook endpoint that refuses every delivery, a stock import finished and one
running; then the dashboard signed in to and photographed in Debian's Chromium (Playwright), into
docs/dashboard.png."""

import asyncio
import gzip
import time
import uuid
from pathlib import Path

import httpx
from playwright.async_api import async_playwright, expect
from sqlmodel import Session

from demo.imports import stock_file
from fulfillment.config import WorkerSettings
from fulfillment.runner import Context
from orders import lifecycle
from orders.db import make_engine, make_sessionmaker
from orders.payments import SandboxGateway
from orders.states import Step
from stack.processes import ROOT, Stack, free_port
from stack.samples import make_cart
from stack.services import empty_queues, fresh_database

DOCS = ROOT / "docs"
KEY = "docs-key"
DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/orders_docs"
BROKER_URL = "amqp://guest:guest@127.0.0.1:5672//"


def place(api: str) -> dict[str, str]:
    response = httpx.post(
        f"{api}/orders", json=make_cart(), headers={"Idempotency-Key": str(uuid.uuid4())}
    )
    response.raise_for_status()
    accepted: dict[str, str] = response.json()
    return accepted


def fail_in_capture(order_id: str) -> None:
    """What a capture that kept timing out leaves: the order failed in capture_payment."""
    settings = WorkerSettings(database_url=DATABASE_URL)
    engine = make_engine(settings, "docs")
    sessions = make_sessionmaker(engine)
    ctx = Context(sessions, SandboxGateway(), settings, httpx.Client())
    from fulfillment import inventory

    inventory.reserve_inventory(ctx, uuid.UUID(order_id))
    with Session(engine) as session:
        order = lifecycle.lock(session, uuid.UUID(order_id))
        assert order is not None
        reason = "GatewayUnavailable: the gateway did not answer within 3.0 s (5 tries)"
        lifecycle.fail(session, order, Step.CAPTURE_PAYMENT, reason, "")
        session.commit()
    engine.dispose()


def upload(api: str, path: Path) -> str:
    headers = {
        "X-API-Key": KEY,
        "Content-Type": "text/csv",
        "Content-Encoding": "gzip",
        "Idempotency-Key": str(uuid.uuid4()),
    }
    body = gzip.compress(path.read_bytes(), compresslevel=1)
    response = httpx.post(f"{api}/ops/imports", content=body, headers=headers, timeout=60)
    response.raise_for_status()
    job_id: str = response.json()["id"]
    return job_id


def job_status(api: str, job_id: str) -> str:
    job = httpx.get(f"{api}/ops/imports/{job_id}", headers={"X-API-Key": KEY}).json()
    status: str = job["status"]
    return status


async def photograph(api: str, path: Path) -> None:
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox"]
        )
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await page.goto(f"{api}/ops/dashboard")
        await page.fill("#key", KEY)
        await page.click("button[type=submit]")
        await expect(page.locator("#live")).to_have_text("live", timeout=15_000)
        await page.wait_for_timeout(1_500)
        await page.screenshot(path=str(path), full_page=True)
        await browser.close()


def main() -> None:
    fresh_database(DATABASE_URL)
    empty_queues(BROKER_URL)
    env = {
        "DATABASE_URL": DATABASE_URL,
        "BROKER_URL": BROKER_URL,
        "OPS_API_KEY": KEY,
        "SECRET_KEY": "docs",
        "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
        "WEBHOOK_BACKOFF_BASE_S": "0.5",
        "WEBHOOK_SWEEP_INTERVAL_S": "0.5",
    }
    stack = Stack(ROOT / ".artifacts" / "docs-logs", env)
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    try:
        stack.api(port)
        stack.ready()
        httpx.post(
            f"{api}/ops/webhook-endpoints",
            headers={"X-API-Key": KEY},
            json={"url": "http://127.0.0.1:9/hooks", "event_types": ["order.completed"]},
        ).raise_for_status()
        fail_in_capture(place(api)["id"])
        stack.relay()
        stack.worker()
        stack.ready()
        for _ in range(30):  # an order a second for half a minute
            place(api)
            time.sleep(1)
        # Two stock imports: one finished with the demo's three bad rows, one running.
        files = ROOT / ".artifacts" / "docs-stock"
        for name in ("small", "large"):
            (files / name).mkdir(parents=True, exist_ok=True)
        finished = upload(api, stock_file(20_000, files / "small"))
        deadline = time.monotonic() + 60
        while job_status(api, finished) != "done" and time.monotonic() < deadline:
            time.sleep(0.5)
        upload(api, stock_file(2_000_000, files / "large"))
        time.sleep(5)
        path = DOCS / "dashboard.png"
        asyncio.run(photograph(api, path))
        print(f"wrote {path.relative_to(ROOT)}")
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
