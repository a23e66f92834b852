"""What a run writes to its logs: JSON lines from every process (uvicorn's supervisor, access and
error logs, tracebacks), and nothing of the customer's, even when the database refuses the order
and the error names the SQL it ran."""

import json
import os

import httpx
import pytest

from stack.processes import ROOT, free_port
from stack.samples import make_cart
from tests.helpers import REFUSED, new_key, settle

CUSTOMER = {"email": "grace.hopper@example.org", "name": "Grace Brewster Hopper"}
ADDRESS = {
    "name": "Grace Brewster Hopper",
    "line1": "1701 Arlington Ridge Road",
    "city": "Quahog Falls",
    "postal_code": "QX7 4ZZ",
    "country": "US",
}
REFUSED_CUSTOMER = {"email": "refused.buyer@example.org", "name": REFUSED}
REFUSED_ADDRESS = ADDRESS | {"name": REFUSED, "line1": "99 Turned Away Lane"}
PERSONAL = [
    *CUSTOMER.values(),
    *(ADDRESS[k] for k in ("line1", "city", "postal_code")),
    REFUSED_CUSTOMER["email"],
    REFUSED_ADDRESS["line1"],
]


def json_lines(log: str) -> list[dict[str, str]]:
    """Every line, parsed: a line that is not JSON fails the test, naming it."""
    entries = []
    for line in filter(None, log.splitlines()):
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line: {line!r}")
    return entries


def without_celerys_own_prints(log: str) -> str:
    """Two things Celery prints itself, past logging: its shutdown line, and when run as root
    (as tests may be; the image runs as a user) a SecurityWarning before logging is set up."""
    preamble, _, rest = log.partition("\n{")
    if os.geteuid() == 0 and "SecurityWarning" in preamble:
        log = "{" + rest
    return log.replace("worker: Warm shutdown (MainProcess)\n", "")


@pytest.mark.slow
async def test_a_run_logs_json_lines_without_the_customers_data(processes, db, order_insert_fails):
    port = free_port()
    log_config = str(ROOT / "orders" / "logging.json")
    api = processes.api(port, "orders.main:app", "--workers", "2", "--log-config", log_config)
    worker, relay = processes.worker(), processes.relay()
    processes.ready()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        placed = await client.post(
            "/orders",
            json=make_cart(customer=CUSTOMER, shipping_address=ADDRESS),
            headers=new_key(),
        )
        refused = await client.post(
            "/orders",
            json=make_cart(customer=REFUSED_CUSTOMER, shipping_address=REFUSED_ADDRESS),
            headers=new_key(),
        )
    assert (placed.status_code, refused.status_code) == (202, 500)
    assert (await settle(db, [placed.json()["id"]])) == {placed.json()["id"]: "completed"}
    processes.stop()

    logs = {process.name: process.log() for process in (api, worker, relay)}
    logs["worker"] = without_celerys_own_prints(logs["worker"])
    entries = {name: json_lines(log) for name, log in logs.items()}
    for name, log in logs.items():
        for personal in PERSONAL:
            assert personal not in log, f"{personal!r} in the {name}'s log"
    api_lines = entries["api"]
    messages = [e["message"] for e in api_lines]
    assert any(m.startswith("Started parent process") for m in messages)  # the supervisor
    access = [e["message"] for e in api_lines if e["logger"] == "uvicorn.access"]
    assert any('"POST /orders HTTP/1.1" 202' in m for m in access)
    assert any('"POST /orders HTTP/1.1" 500' in m for m in access)
    # The refused insert's traceback: one JSON line, its SQL named, its parameters not.
    crash = next(
        e for e in api_lines if "injected: the order cannot be written" in e.get("error", "")
    )
    assert crash["error"].startswith("Traceback")
    assert "INSERT INTO" in crash["error"]
    assert "hide_parameters=True" in crash["error"]
    assert any(e["message"].startswith("Task fulfillment.") for e in entries["worker"])
