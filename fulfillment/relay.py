"""The outbox relay (`make relay`): publishes committed outbox rows to RabbitMQ and marks them.

Rows are claimed with FOR UPDATE SKIP LOCKED, so two relays never publish the same row; each
message waits for the broker's publisher confirm, and the marks commit after the confirms. A crash
before that commit means the row is published again later, never lost; the steps make that second
message harmless. The relay
wakes on PostgreSQL NOTIFY (a trigger on outbox) and polls as a fallback.

It also sends the webhook deliveries that are due (new ones right after their event, retries
when their time comes), grouped by endpoint; and periodically it enqueues again what any order
(its step, its void, refund or credit note) or stock import that stopped moving waits for
(`STALL_AFTER_S`), and purges old webhook attempts.
"""

import contextlib
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from typing import Any

import psycopg
from amqp.exceptions import AMQPError, MessageNacked
from kombu.connection import Connection
from kombu.exceptions import OperationalError as BrokerError
from kombu.messaging import Producer
from sqlalchemy import Integer, Update, bindparam, update
from sqlalchemy import select as sql_select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col

from fulfillment.celery_app import app
from fulfillment.config import WorkerSettings, settings
from fulfillment.deliveries import purge_attempts
from fulfillment.publishing import declare, publish, publish_deliveries
from orders import context, lifecycle, refunds, stock_import
from orders.context import configure_logging
from orders.db import connect_args, make_engine, make_sessionmaker
from orders.messages import DeliverWebhooks, enqueue
from orders.models import Outbox, WebhookDelivery, table, utcnow

log = logging.getLogger("fulfillment.relay")

BROKER_DOWN = (BrokerError, AMQPError, OSError)  # refused, lost, timed out, heartbeats missed
DATABASE_DOWN = (DBAPIError, psycopg.Error)  # the same, for PostgreSQL (a restart drops them all)


class Outage:
    """A peer's outage as the relay lives through it: logged once when it begins and once when
    it ends, with a pause that doubles between tries."""

    def __init__(self, peer: str, max_backoff_s: float) -> None:
        self.peer, self.max_backoff_s = peer, max_backoff_s
        self.since: float | None = None
        self.backoff_s = 0.0

    def wait(self, error: Exception) -> None:
        if self.since is None:
            self.since = time.monotonic()
            log.warning("%s unreachable, outbox rows wait: %r", self.peer, error)
        self.backoff_s = min(self.max_backoff_s, max(0.2, self.backoff_s * 2))
        time.sleep(self.backoff_s)

    def over(self) -> None:
        if self.since is not None:
            log.warning(
                "%s back after %.1f s; catching up", self.peer, time.monotonic() - self.since
            )
            self.since, self.backoff_s = None, 0.0


def sweep_due_deliveries(sessions: sessionmaker[Session], producer: Producer) -> int:
    """Retries scheduled in the database come due here: they survive any restart."""
    with sessions() as session:
        due = col(WebhookDelivery.next_attempt_at) <= utcnow()
        sent = publish_deliveries(session, due, producer)
        session.commit()
        return sent


@dataclass(frozen=True)
class Batch:
    claimed: int  # rows
    webhooks_due: bool  # some said that webhook deliveries are due


def relay_batch(
    sessions: sessionmaker[Session], size: int, refused: set[int], producer: Producer
) -> Batch:
    """Publish up to `size` unpublished rows and mark them.

    One statement claims and marks the rows: their row locks are held until the commit, after
    the broker confirmed them, and a row that did not reach the broker is unmarked before it. A
    crash in between rolls the marks back: the rows are published again (at least once).

    A row the broker refuses (a nack: say, a queue at its length limit with `reject-publish`)
    stays unpublished and is offered again with the next batch; the rows after it go on. Its id
    is kept in `refused`, so the refusal is logged once.

    A row that says webhook deliveries are due publishes nothing itself: the deliveries are rows
    of their own, due at once, and the relay's next sweep sends every due one, a message per
    endpoint and batch (see Relay.run)."""
    outbox = table(Outbox)
    webhooks_due = False
    with sessions() as session:
        claimed = session.exec(_claim(), params={"size": size, "now": utcnow()}).all()
        rows = sorted(claimed, key=lambda row: row.id)
        published: set[int] = set()
        try:
            for row in rows:
                if row.kind == DeliverWebhooks.kind:
                    webhooks_due = True
                    published.add(row.id)
                    continue
                try:
                    publish(row.id, row.kind, row.payload, producer)
                except BrokerError as error:
                    if not isinstance(error.__cause__, MessageNacked):
                        raise  # the broker is unreachable: every row waits
                    if row.id not in refused:
                        refused.add(row.id)
                        log.warning(
                            "the broker refused outbox row %s (%s); it waits", row.id, row.kind
                        )
                    continue
                if row.id in refused:
                    refused.discard(row.id)
                    log.warning("outbox row %s published after the broker refused it", row.id)
                published.add(row.id)
        finally:
            context.request_id.set(None)
            context.order_id.set(None)
            if published:  # keep the marks of what reached the broker, even if a later row did not
                if unsent := [row.id for row in rows if row.id not in published]:
                    session.exec(
                        update(outbox).where(outbox.c.id.in_(unsent)).values(published_at=None)
                    )
                session.commit()
    return Batch(len(rows), webhooks_due)


@cache
def _claim() -> Update:
    """The oldest `size` unpublished rows, locked (rows another relay holds are skipped) and marked
    published at `now`, returned. Built once."""
    outbox = table(Outbox)
    oldest = (
        sql_select(outbox.c.id)
        .where(outbox.c.published_at.is_(None))
        .order_by(outbox.c.id)
        .limit(bindparam("size", type_=Integer))
        .with_for_update(skip_locked=True)
    )
    return (
        update(outbox)
        .where(outbox.c.id.in_(oldest.scalar_subquery()))
        .values(published_at=bindparam("now", type_=outbox.c.published_at.type))
        .returning(outbox.c.id, outbox.c.kind, outbox.c.payload)
    )


def requeue_stalled(sessions: sessionmaker[Session], idle_for: timedelta) -> int:
    """Orders that stopped moving (on their way, or in a cancellation), and stock imports, get
    what they wait for enqueued again."""
    with sessions() as session:
        orders = lifecycle.stalled(session, idle_for, limit=100)
        for order in orders:
            task = lifecycle.requeue(session, order)
            log.warning("order %s stalled in %s; %s enqueued again", order.id, order.status, task)
        for message in refunds.stalled(session, idle_for):
            enqueue(session, message)
            log.warning(
                "order %s stalled in its cancellation; %s enqueued again",
                message.about(),
                message.task.name,
            )
        for job_id in stock_import.requeue_stalled(session, idle_for):
            log.warning("stock import %s stalled; enqueued again", job_id)
        session.commit()
        return len(orders)


class Relay:
    def __init__(self, config: WorkerSettings) -> None:
        self.config = config
        self.sessions = make_sessionmaker(make_engine(config, "orders-relay"))
        self.stopping = False
        self.listens = make_url(config.database_url).drivername.startswith("postgresql")
        self.listener: psycopg.Connection[Any] | None = None
        self.refused: set[int] = set()
        self.connection: Connection | None = None
        self.producer: Producer | None = None
        self.next_sweep = self.next_purge = self.last_sweep = 0.0
        self.next_stall_check = time.monotonic() + config.stall_check_interval_s

    def _listen(self) -> None:
        """LISTEN on a connection of its own (PostgreSQL only: other databases are polled)."""
        if not self.listens or self.listener is not None:
            return
        url = make_url(self.config.database_url).set(drivername="postgresql")
        dsn = url.render_as_string(hide_password=False)
        options = connect_args(self.config, "orders-relay-listen")
        self.listener = psycopg.connect(dsn, autocommit=True, **options)
        self.listener.execute("LISTEN outbox")

    def _drop_listener(self) -> None:
        if self.listener is not None:
            with contextlib.suppress(psycopg.Error):
                self.listener.close()
        self.listener = None

    def _wait_for_work(self, timeout_s: float) -> None:
        if self.listener is None:
            time.sleep(timeout_s)
            return
        for _ in self.listener.notifies(timeout=timeout_s, stop_after=1):
            pass

    def _producer(self) -> Producer:
        """The relay's connection, with heartbeats: a broker gone silent is noticed within two
        of them (`heartbeat_check`, every loop) rather than never."""
        if self.producer is None:
            self.connection = app.connection_for_write(heartbeat=self.config.broker_heartbeat_s)
            self.connection.ensure_connection(max_retries=1, timeout=5)
            self.producer = self.connection.Producer()
            declare(self.producer)
        assert self.connection is not None
        with contextlib.suppress(TimeoutError):  # read what came in: the broker's heartbeats
            while True:
                self.connection.drain_events(timeout=0.001)
        self.connection.heartbeat_check()
        return self.producer

    def _drop_connection(self) -> None:
        """Let go of it without the closing handshake, which a silent broker never answers."""
        if self.connection is not None:
            self.connection.collect()
        self.connection = self.producer = None

    def run(self, until: Callable[[], bool] = lambda: False) -> None:
        """Until stopped: publish, do what is due, wait for a NOTIFY, the poll interval or the
        next sweep. The broker or the database gone (a restart, a network cut) is waited out, not
        a crash: the rows wait in the outbox, and the pools reconnect when it is back.

        New webhook deliveries bring the sweep forward, to at most WEBHOOK_LINGER_S after the
        last one: an event's webhooks go out at once when the shop is quiet, and in a burst the
        deliveries to one endpoint gather into batches (a task each) rather than a task each."""
        log.info("relay started; broker %s", app.conf.broker_url.split("@")[-1])
        broker = Outage("broker", self.config.relay_max_backoff_s)
        database = Outage("database", self.config.relay_max_backoff_s)
        while not (self.stopping or until()):
            try:
                self._listen()
                producer, size = self._producer(), self.config.relay_batch_size
                while True:
                    batch = relay_batch(self.sessions, size, self.refused, producer)
                    if batch.webhooks_due:
                        soon = self.last_sweep + self.config.webhook_linger_s
                        self.next_sweep = min(self.next_sweep, soon)
                    if batch.claimed < size:
                        break
                self._periodic(producer)
                broker.over()
                database.over()
                until_sweep = max(0.0, self.next_sweep - time.monotonic())
                self._wait_for_work(min(self.config.relay_poll_interval_s, until_sweep))
            except BROKER_DOWN as error:
                self._drop_connection()
                broker.wait(error)
            except DATABASE_DOWN as error:
                self._drop_listener()
                database.wait(error)

    def _periodic(self, producer: Producer) -> None:
        now = time.monotonic()
        if now >= self.next_sweep:
            sweep_due_deliveries(self.sessions, producer)
            self.last_sweep = now
            self.next_sweep = now + self.config.webhook_sweep_interval_s
        if now >= self.next_stall_check:
            idle_for = timedelta(seconds=self.config.stall_after_s)
            requeue_stalled(self.sessions, idle_for)
            self.next_stall_check = now + self.config.stall_check_interval_s
        if now >= self.next_purge:
            with self.sessions() as session:
                retention = timedelta(days=self.config.webhook_attempt_retention_days)
                if purged := purge_attempts(session, retention):
                    log.info("purged %d webhook attempts older than %s", purged, retention)
            self.next_purge = now + 3600

    def stop(self, *_: object) -> None:
        self.stopping = True


def main() -> None:
    configure_logging(settings.log_format)
    relay = Relay(settings)
    signal.signal(signal.SIGTERM, relay.stop)
    signal.signal(signal.SIGINT, relay.stop)
    relay.run()


if __name__ == "__main__":
    main()
