"""Client CPU of the fulfilment tasks and of the relay, each alone in this process, on a fresh
bench database: what a change to their statements saves, without the noise of a whole pipeline.

    python -m bench.task_cost --orders 300             # reserve+capture, then the render
    python -m bench.task_cost --orders 300 --no-pdf    # the render's database work alone
    python -m bench.task_cost --relay 400              # the relay, one outbox row per wake

Orders are placed through the API with the fake gateway answering at once; then `run_steps` runs
each order's tasks here, timed with `time.process_time`. The relay mode commits an outbox row
every 20 ms from a thread and times the relay's own thread (`time.thread_time`); its messages go
to RabbitMQ and are purged after.
"""

import argparse
import asyncio
import os
import threading
import time
import uuid

import psycopg

from bench.flows import place_burst
from bench.profile_workers import DB_URL
from orders.db import libpq_url
from stack.processes import ROOT, Stack, free_port
from stack.services import empty_queues, fresh_database

BROKER_URL = "amqp://guest:guest@127.0.0.1:5672//"
WARM_UP = 20


def tasks(count: int, pdf: bool) -> None:
    gateway, api = free_port(), free_port()
    env = {
        "DATABASE_URL": DB_URL,
        "PAYMENT_GATEWAY": "http",
        "PAYMENT_GATEWAY_URL": f"http://127.0.0.1:{gateway}",
        "OPS_API_KEY": "bench",
    }
    stack = Stack(ROOT / ".bench" / "logs", env)
    try:
        stack.fake("fakes.gateway", gateway, "--latency-ms", "0")
        stack.api(api, "orders.main:app", "--no-access-log", "--log-level", "warning")
        stack.ready()
        ids = asyncio.run(place_burst(f"http://127.0.0.1:{api}", count + WARM_UP))
        os.environ.update(env)  # the worker's settings, read when its modules are imported
        from fulfillment import invoices
        from fulfillment.tasks import context, run_steps
        from orders.states import Step

        if not pdf:  # a stand-in of a typical PDF's size: the task's database work alone
            setattr(invoices, "render_pdf", lambda _: b"%PDF-1.7 " + b"x" * 40_000)  # noqa: B010
        ctx = context()
        for first in (Step.RESERVE_INVENTORY, Step.RENDER_INVOICE):
            for order_id in ids[:WARM_UP]:
                run_steps(ctx, first, order_id)
            started = time.process_time()
            for order_id in ids[WARM_UP:]:
                run_steps(ctx, first, order_id)
            ms = (time.process_time() - started) * 1000 / count
            print(f"{first.value}{'' if pdf else ' (no PDF)'}: {ms:.2f} ms of CPU per task")
    finally:
        stack.stop()


def relay(count: int) -> None:
    os.environ.update({"DATABASE_URL": DB_URL, "BROKER_URL": BROKER_URL})
    from fulfillment.config import settings
    from fulfillment.relay import Relay
    from orders.db import make_engine, make_sessionmaker
    from orders.messages import RunStep, enqueue
    from orders.states import Step

    sessions = make_sessionmaker(make_engine(settings, "bench-feeder"))
    done = threading.Event()

    def feed() -> None:
        time.sleep(1)
        for _ in range(count):
            with sessions() as session:
                enqueue(session, RunStep(order_id=uuid.uuid4(), step=Step.RENDER_INVOICE))
                session.commit()
            time.sleep(0.02)
        time.sleep(1)
        done.set()

    threading.Thread(target=feed, daemon=True).start()
    started = time.thread_time()
    Relay(settings).run(until=done.is_set)
    ms = (time.thread_time() - started) * 1000 / count
    print(f"relay: {ms:.2f} ms of CPU per message, one row per wake")
    empty_queues(BROKER_URL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--no-pdf", action="store_true")
    parser.add_argument("--relay", type=int, default=0, help="outbox rows for the relay mode")
    args = parser.parse_args()
    fresh_database(DB_URL)
    with psycopg.connect(libpq_url(DB_URL), autocommit=True) as conn:
        conn.execute("UPDATE product SET stock_on_hand = 1000000000")
    empty_queues(BROKER_URL)
    if args.relay:
        relay(args.relay)
    else:
        tasks(args.orders, pdf=not args.no_pdf)


if __name__ == "__main__":
    main()
