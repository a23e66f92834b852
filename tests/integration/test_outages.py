"""PostgreSQL down: the API answers 503 problem+json quickly and writes nothing; it is not
ready (a load balancer sends it nothing) but alive (nothing restarts it)."""

from stack.processes import free_port
from stack.samples import make_cart
from tests.helpers import new_key, running_app


async def test_database_down_is_503_problem(test_settings):
    settings = test_settings(
        database_url=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/orders",
        db_connect_timeout_s=1,
    )
    async with running_app(settings) as client:
        checkout = await client.post("/orders", json=make_cart(), headers=new_key())
        catalog = await client.get("/products")
        ready = await client.get("/health/ready")
        live = await client.get("/health/live")
    assert live.status_code == 200  # the process is fine: no reason to restart it
    for response in (checkout, catalog, ready):
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["retry-after"]
        assert "database" in response.json()["detail"]


async def test_broker_down_is_reported_but_the_api_stays_ready(test_settings):
    """Checkout goes on without RabbitMQ (the outbox holds the work): ready, the broker named."""
    settings = test_settings(broker_url=f"amqp://guest:guest@127.0.0.1:{free_port()}//")
    async with running_app(settings) as client:
        ready = await client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "database": "ok", "broker": "unreachable"}
