"""The OpenAPI document against the running API, by schemathesis: every operation, examples that
fit the schema and examples that break it, the operators' key sent, and real ids to look up. No
server error, and no status code, content type, header or body that the document does not
describe."""

import re
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from stack.processes import BIN, Stack, free_port
from stack.samples import make_cart

OPS_KEY = "contract-ops-key"
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)


@pytest.fixture
def api(db, database_url: str, tmp_path: Path):
    """The API as it runs in production (uvicorn, a process of its own) on the test database."""
    env = {
        "DATABASE_URL": database_url,
        "OPS_API_KEY": OPS_KEY,
        "SECRET_KEY": "contract-secret",
        "ENVIRONMENT": "test",
        "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
        "STREAM_MAX_S": "1",  # the order's live stream, for a pending order, ends after 1 s
    }
    stack = Stack(tmp_path / "logs", env)
    port = free_port()
    stack.api(port, "orders.main:app", "--log-level", "warning")
    stack.ready()
    yield f"http://127.0.0.1:{port}"
    stack.stop()


def existing_ids(api: str) -> tuple[dict[str, str], str]:
    """An endpoint, an order (so a delivery), for the by-id operations to find; and the order's
    token."""
    ops = {"X-API-Key": OPS_KEY}
    endpoint = httpx.post(
        f"{api}/ops/webhook-endpoints",
        json={"url": "http://127.0.0.1:9/hooks", "event_types": ["order.placed"]},
        headers=ops,
    ).json()
    order = httpx.post(
        f"{api}/orders", json=make_cart(), headers={"Idempotency-Key": str(uuid.uuid4())}
    ).json()
    delivery = httpx.get(f"{api}/ops/webhook-deliveries", headers=ops).json()["items"][0]
    ids = {
        "path.order_id": order["id"],
        "path.endpoint_id": endpoint["id"],
        "path.delivery_id": delivery["id"],
        "path.sku": "MUG-001",
    }
    return ids, order["access_token"]


@pytest.mark.slow
def test_every_answer_is_one_the_openapi_document_describes(api, tmp_path: Path):
    ids, token = existing_ids(api)
    config = tmp_path / "schemathesis.toml"
    config.write_text("[parameters]\n" + "".join(f'"{k}" = "{v}"\n' for k, v in ids.items()))
    command = [
        str(BIN / "schemathesis"),
        "--config-file",
        str(config),
        "run",
        f"{api}/openapi.json",
        "--header",
        f"X-API-Key: {OPS_KEY}",
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        CHECKS,
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        "25",
        "--seed",
        "20261203",
        "--generation-database",
        "none",
        "--no-color",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
    summary = result.stdout[result.stdout.find("SUMMARY") :]
    print(summary, file=sys.stderr)
    assert result.returncode == 0, result.stdout[-6000:]
    paths = httpx.get(f"{api}/openapi.json").json()["paths"]
    operations = sum(len(methods) for methods in paths.values())
    assert operations >= 24
    assert f"Tested: {operations}" in summary  # every operation
    cases = re.search(r"(\d+) generated, (\d+) passed", summary)
    assert cases is not None, summary
    assert int(cases[1]) == int(cases[2]) > 500
