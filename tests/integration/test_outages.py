"""PostgreSQL down: the API answers 503 problem+json quickly and writes nothing."""

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
    for response in (checkout, catalog):
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["retry-after"]
        assert "database" in response.json()["detail"]
