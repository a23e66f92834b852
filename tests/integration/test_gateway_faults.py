"""The HTTP card gateway over loopback: success, timeouts and 5xx write nothing and answer 503."""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from stack.processes import free_port
from stack.samples import make_cart
from tests.helpers import (
    assert_nothing_written,
    assert_problem,
    count,
    eventually,
    new_key,
    running_app,
)


async def test_authorizes_through_the_http_gateway(http_gateway_client, db, fake_gateway):
    response = await http_gateway_client.post("/orders", json=make_cart(), headers=new_key())
    assert response.status_code == 202, response.text
    assert fake_gateway.stats()["authorizations"] == 1
    payment = db.execute("SELECT gateway, card_brand, card_last4, amount FROM payment").fetchone()
    assert payment == ("http", "visa", "4242", 4_920)


async def test_http_gateway_decline_is_402(http_gateway_client, db, fake_gateway):
    cart = make_cart(payment_token="tok_insufficientFunds")
    response = await http_gateway_client.post("/orders", json=cart, headers=new_key())
    assert assert_problem(response, 402, "payment_token")["decline_code"] == "insufficient_funds"
    assert count(db, '"order"') == 0


async def test_gateway_timeout_is_503_with_retry_after_and_writes_nothing(
    db, test_settings, fake_gateway
):
    settings = test_settings(
        payment_gateway="http",
        payment_gateway_url=fake_gateway.url,
        payment_read_timeout_s=0.5,
        payment_connect_timeout_s=0.5,
    )
    fake_gateway.configure(latency_ms=2_000)  # the client reads for 0.5 s at most
    key = new_key()
    async with running_app(settings) as client:
        response = await client.post("/orders", json=make_cart(), headers=key)
        assert_problem(response, 503)
        assert int(response.headers["retry-after"]) > 0
        assert_nothing_written(db)

        # The gateway finished the authorization after we gave up on it...
        await eventually(
            lambda: fake_gateway.stats()["authorizations"] == 1, 10, "the late authorization"
        )
        fake_gateway.configure(latency_ms=0)
        retry = await client.post("/orders", json=make_cart(), headers=key)
        assert retry.status_code == 202
        assert count(db, '"order"') == 1
        # ...and the retry with the same key found it instead of charging the card twice.
        assert fake_gateway.stats()["authorizations"] == 1


async def test_gateway_5xx_is_503_and_writes_nothing(http_gateway_client, db, fake_gateway):
    fake_gateway.configure(failure_rate=1.0, failure_status=502)
    response = await http_gateway_client.post("/orders", json=make_cart(), headers=new_key())
    assert_problem(response, 503)
    assert_nothing_written(db)
    assert fake_gateway.stats()["authorizations"] == 0


async def test_unreachable_gateway_is_503(db, test_settings):
    settings = test_settings(
        payment_gateway="http", payment_gateway_url=f"http://127.0.0.1:{free_port()}"
    )
    async with running_app(settings) as client:
        response = await client.post("/orders", json=make_cart(), headers=new_key())
    assert_problem(response, 503)
    assert_nothing_written(db)


async def test_a_checkout_waiting_on_the_gateway_holds_no_database_connection(
    db, test_settings, fake_gateway
):
    # One connection, given up on after 0.2 s; each authorization takes 0.4 s. Had a checkout kept
    # its connection through the gateway call, the other two would time out on the pool (503).
    fake_gateway.configure(latency_ms=400)
    settings = test_settings(
        payment_gateway="http",
        payment_gateway_url=fake_gateway.url,
        db_pool_size=1,
        db_max_overflow=0,
        db_pool_timeout_s=0.2,
    )
    async with running_app(settings) as client:
        responses = await asyncio.gather(
            *(client.post("/orders", json=make_cart(), headers=new_key()) for _ in range(3))
        )
    assert [r.status_code for r in responses] == [202, 202, 202], [r.text for r in responses]
    assert count(db, '"order"') == 3


async def test_a_token_the_http_gateway_does_not_know_is_422_naming_the_field(
    http_gateway_client, db, fake_gateway
):
    cart = make_cart(payment_token="tok_nobodyKnowsThis")
    response = await http_gateway_client.post("/orders", json=cart, headers=new_key())
    assert_problem(response, 422, "payment_token")
    assert_nothing_written(db)


@contextlib.asynccontextmanager
async def raw_gateway(answer: Callable[[asyncio.StreamWriter], Awaitable[None]]):
    """A gateway that misbehaves below what fakes.gateway can be told to do: it reads the request
    and then writes whatever `answer` writes, on loopback."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await reader.readuntil(b"\r\n\r\n")
            await answer(writer)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def test_a_gateway_that_trickles_its_answer_is_given_up_on_within_the_budget(
    db, test_settings
):
    async def trickle(writer: asyncio.StreamWriter) -> None:
        # A byte every 0.05 s, well within the read timeout; the whole answer would take 30 s.
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 600\r\n\r\n"
        writer.write(head)
        for _ in range(600):
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.05)

    async with raw_gateway(trickle) as url:
        settings = test_settings(
            payment_gateway="http",
            payment_gateway_url=url,
            payment_connect_timeout_s=0.5,
            payment_read_timeout_s=1.0,
            request_deadline_s=60,  # so that the authorizer's own budget is what ends the wait
        )
        async with running_app(settings) as client:
            # Within the budget (1.5 s) the checkout gives up; a client that waited for the
            # whole answer would still be waiting when this test's own limit ends it.
            response = await asyncio.wait_for(
                client.post("/orders", json=make_cart(), headers=new_key()), timeout=15
            )
    assert_problem(response, 503)
    assert_nothing_written(db)


async def test_a_gateway_answer_that_is_not_json_is_503(db, test_settings):
    async def html(writer: asyncio.StreamWriter) -> None:
        page = b"<html>Bad gateway, in HTML</html>"
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n%s"
            % (len(page), page)
        )
        await writer.drain()

    async with raw_gateway(html) as url:
        settings = test_settings(payment_gateway="http", payment_gateway_url=url)
        async with running_app(settings) as client:
            response = await client.post("/orders", json=make_cart(), headers=new_key())
    assert_problem(response, 503)
    assert_nothing_written(db)
