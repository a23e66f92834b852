"""The ops pages as people use them: sign-in (no cookie -> the form, a wrong key, CSRF), and the
dashboard in a real browser (Debian's Chromium driven by Playwright) against a real uvicorn
process, a relay and a worker: a placed order's count changes without a reload, and a failed
order's Retry button takes it to completed."""

import contextlib
import re
import shutil
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from fulfillment import inventory
from orders import lifecycle
from orders.states import Step
from stack.processes import ROOT, Stack, free_port
from stack.samples import make_cart
from tests.helpers import count, eventually, new_key, status_of

pytestmark = pytest.mark.slow
KEY = "dashboard-test-key"
CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / ".artifacts" / "screenshots"


@pytest.fixture
def api(processes: Stack) -> str:
    port = free_port()
    processes.env |= {"OPS_API_KEY": KEY, "SECRET_KEY": "dashboard-test"}
    processes.api(port).wait_ready()
    return f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def signed_in(api: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api, timeout=10) as client:
        response = client.post("/ops/login", data={"key": KEY, "next": "/ops/dashboard"})
        assert response.status_code == 303
        assert response.headers["location"] == "/ops/dashboard"
        cookie = response.headers["set-cookie"].lower()
        for attribute in ("httponly", "samesite=strict", "path=/ops", "max-age=28800"):
            assert attribute in cookie
        assert "secure" not in cookie  # plain HTTP here; over HTTPS it is set
        yield client


def csrf_of(page_html: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page_html)
    assert found is not None
    return found.group(1)


def test_without_a_session_a_page_sends_to_sign_in_and_the_api_says_401(api):
    with httpx.Client(base_url=api, timeout=10) as client:
        page = client.get("/ops/dashboard")
        assert page.status_code == 303
        assert page.headers["location"] == "/ops/login?next=%2Fops%2Fdashboard"
        form = client.get(page.headers["location"])
        assert form.status_code == 200
        assert 'name="key"' in form.text
        assert "unsafe-inline" not in form.headers["content-security-policy"]
        summary = client.get("/ops/summary")
        assert summary.status_code == 401
        assert summary.headers["content-type"] == "application/problem+json"
        assert client.get("/ops/summary", headers={"X-API-Key": KEY}).status_code == 200


def test_a_wrong_key_gets_the_same_answer_each_time_and_repeated_failures_are_slowed(api):
    with httpx.Client(base_url=api, timeout=30) as client:
        answers, times = [], []
        for _ in range(6):
            response = client.post("/ops/login", data={"key": "wrong", "next": "/ops/dashboard"})
            answers.append((response.status_code, response.text))
            times.append(response.elapsed.total_seconds())
        assert {status for status, _ in answers} == {401}
        assert len({body for _, body in answers}) == 1  # word for word the same
        assert "That key is not right." in answers[0][1]
        assert "set-cookie" not in response.headers
        # Three are free; the sixth waits 0.25 * 2**2 = 1 s before it is answered.
        assert times[5] >= 1.0
        metrics = client.get("/metrics", headers={"X-API-Key": KEY}).text
        assert re.search(r"^orders_ops_login_failures_total 6\.0$", metrics, re.M)


def test_a_signed_in_change_needs_its_csrf_token(api):
    with signed_in(api) as client:
        html = client.get("/ops/dashboard").text
        retry = f"/ops/orders/{uuid.uuid4()}/retry"
        refused = client.post(retry)
        assert refused.status_code == 403
        assert refused.json()["type"] == "/problems/csrf-token-missing"
        assert client.post(retry, headers={"X-CSRF-Token": "forged"}).status_code == 403
        # With the page's token the request goes through (to a 404: no such order).
        assert client.post(retry, headers={"X-CSRF-Token": csrf_of(html)}).status_code == 404
        assert client.post("/ops/logout", data={"csrf_token": "forged"}).status_code == 403
        out = client.post("/ops/logout", data={"csrf_token": csrf_of(html)})
        assert out.status_code == 303
        assert 'ops_session=""' in out.headers["set-cookie"]


def place(api: str) -> dict[str, Any]:
    response = httpx.post(f"{api}/orders", json=make_cart(), headers=new_key(), timeout=10)
    assert response.status_code == 202, response.text
    accepted: dict[str, Any] = response.json()
    return accepted


@pytest.fixture
def chromium() -> str:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    return CHROMIUM


async def open_page(p: Any, chromium: str) -> tuple[Any, Any, list[str]]:
    """Chromium, a page, and the errors its console reports."""
    browser = await p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return browser, page, errors


async def test_the_dashboard_updates_live_and_retries_a_failed_order(
    api, processes, db, step_context, chromium
):
    from playwright.async_api import async_playwright, expect

    # An order that failed in its capture: reserved here, in this process, then failed.
    failed = place(api)
    order_id = uuid.UUID(failed["id"])
    inventory.reserve_inventory(step_context, order_id)
    with step_context.sessions() as session:
        order = lifecycle.lock(session, order_id)
        assert order is not None
        lifecycle.fail(session, order, Step.CAPTURE_PAYMENT, "GatewayUnavailable: injected", "")
        session.commit()

    async with async_playwright() as p:
        browser, page, errors = await open_page(p, chromium)
        await page.goto(f"{api}/ops/dashboard")
        await expect(page.locator("h1")).to_have_text("Sign in")
        await page.fill("#key", "wrong")
        await page.click("button[type=submit]")
        await expect(page.locator(".error")).to_have_text("That key is not right.")
        await page.fill("#key", KEY)
        await page.click("button[type=submit]")
        await expect(page).to_have_url(f"{api}/ops/dashboard")
        errors.clear()  # the wrong key's 401 was one; from here on, none
        await expect(page.locator("#live")).to_have_text("live", timeout=15_000)

        # A new order placed: its count changes on the page, which is not reloaded.
        await page.evaluate("window.notReloaded = true")
        pending = page.locator('[data-status="pending"]')
        await expect(pending).to_have_text("0")
        place(api)
        await expect(pending).to_have_text("1", timeout=15_000)
        assert await page.evaluate("window.notReloaded") is True

        # The failed order is listed with its step; Retry takes it to completed.
        row = page.locator(f'#failed tr[data-order="{order_id}"]')
        await expect(row).to_contain_text("capture_payment")
        await expect(row).to_contain_text("GatewayUnavailable: injected")
        processes.worker()
        processes.relay()
        processes.ready()
        await row.get_by_role("button", name="Retry").click()
        await expect(row).to_have_count(0, timeout=60_000)
        await eventually(lambda: status_of(db, str(order_id)) == "completed", 60, "the retry")
        completed = page.locator('[data-status="completed"]')
        await expect(completed).to_have_text("2", timeout=60_000)  # the retried and the new one
        assert await page.evaluate("window.notReloaded") is True

        SHOTS.mkdir(parents=True, exist_ok=True)
        shot = SHOTS / "dashboard.png"
        await page.screenshot(path=str(shot), full_page=True)

        # From the order's page: its invoice, and Cancel and refund (after a confirmation).
        await page.goto(f"{api}/ops/dashboard/orders/{order_id}")
        await expect(page.get_by_role("link", name="Invoice INV-")).to_be_visible()
        page.once("dialog", lambda dialog: dialog.accept())
        await page.get_by_role("button", name="Cancel and refund").click()
        await eventually(lambda: status_of(db, str(order_id)) == "refunded", 60, "the refund")
        # The page follows the order: it shows the new status and the credit note by itself.
        await expect(page.locator("h1 .pill")).to_have_text("refunded", timeout=30_000)
        await expect(page.get_by_role("link", name="Credit note CN-000001")).to_be_visible(
            timeout=30_000
        )
        await browser.close()
    assert shot.stat().st_size > 20_000
    assert errors == []
    assert count(db, "audit_log WHERE action = 'order.retry_requested'") == 1


def job_row(db, job_id: uuid.UUID, percent: int, rows: int) -> None:
    db.execute(
        "INSERT INTO import_job (id, idempotency_key, sha256, spool_name, status, bytes_total,"
        " bytes_done, lines_done, rows_done, rows_failed, created_at, started_at, updated_at)"
        " VALUES (%s, 'k', 'sha', 'x.csv', 'running', 50000000, %s, %s, %s, 12,"
        " now() - interval '20 seconds', now() - interval '20 seconds', now())"
        " ON CONFLICT (id) DO UPDATE SET bytes_done = EXCLUDED.bytes_done,"
        " rows_done = EXCLUDED.rows_done, lines_done = EXCLUDED.lines_done, updated_at = now()",
        (job_id, percent * 500_000, rows, rows),
    )


async def test_a_running_import_shows_a_progress_bar_that_moves_and_a_cancel_button(
    api, db, chromium
):
    from playwright.async_api import async_playwright, expect

    job_id = uuid.uuid4()
    job_row(db, job_id, percent=40, rows=300_000)
    async with async_playwright() as p:
        browser, page, errors = await open_page(p, chromium)
        await page.goto(f"{api}/ops/login?next=/ops/dashboard")
        await page.fill("#key", KEY)
        await page.click("button[type=submit]")
        await expect(page.locator("#live")).to_have_text("live", timeout=15_000)
        await page.evaluate("window.notReloaded = true")

        row = page.locator(f'#imports tr[data-job="{job_id}"]')
        bar = row.locator("progress")
        await expect(row.locator(".percent")).to_have_text("40.0 %")
        assert await bar.evaluate("node => node.value") == 40
        await expect(row).to_contain_text("300,000")
        await expect(row.get_by_role("link", name="12")).to_have_attribute(
            "href", f"/ops/imports/{job_id}/errors.csv"
        )
        job_row(db, job_id, percent=80, rows=600_000)  # the worker moved on
        await expect(row.locator(".percent")).to_have_text("80.0 %", timeout=10_000)
        assert await bar.evaluate("node => node.value") == 80
        await expect(row).to_contain_text("600,000")
        assert await page.evaluate("window.notReloaded") is True

        SHOTS.mkdir(parents=True, exist_ok=True)
        shot = SHOTS / "dashboard-imports.png"
        await row.screenshot(path=str(shot))
        await row.get_by_role("button", name="Cancel").click()
        await eventually(
            lambda: count(db, "import_job WHERE cancel_requested_at IS NOT NULL") == 1,
            what="the cancel",
        )
        await expect(row.get_by_role("button", name="Cancel")).to_have_count(0, timeout=10_000)
        await browser.close()
    assert shot.stat().st_size > 2_000
    assert errors == []
