"""What wakes the live streams: on PostgreSQL one LISTEN connection per API process (channel
`order_event`, raised by a trigger on every committed event, its payload the order's id), fanned
out in memory to the streams that wait; on SQLite, or while that connection is being
re-established, a poll. A stream that waits holds no database connection: it reads with a short
session from the pool when it is woken, and gives the connection back.

The same connection listens on `catalog` for checkout's price book (orders.catalog), which is
trusted only while it is up."""

import asyncio
import contextlib
import logging
import os
from collections import defaultdict
from collections.abc import Iterator

import psycopg

from orders.catalog import PriceBook
from orders.config import Settings
from orders.db import connect_args, is_sqlite, libpq_url

log = logging.getLogger(__name__)

CHANNEL = "order_event"
CATALOG = "catalog"  # a statement changed products: checkout's prices are read again
ANY = "*"  # what the operators' stream watches: every order


class Hub:
    def __init__(self, settings: Settings, poll_s: float, catalog: PriceBook) -> None:
        self.dsn = None if is_sqlite(settings.database_url) else libpq_url(settings.database_url)
        # Named with the process's id: which process holds which listener shows in pg_stat_activity.
        self.options = connect_args(settings, f"orders-api-listen:{os.getpid()}")
        self.poll_s = poll_s
        self.catalog = catalog  # trusted while this listens on CATALOG too
        self.listening = False
        self.watchers: defaultdict[str, set[asyncio.Event]] = defaultdict(set)
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.dsn is not None:
            self.task = asyncio.create_task(self._listen(), name="live-listen")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def _listen(self) -> None:
        assert self.dsn is not None
        backoff = 0.5
        while True:
            try:
                connection = await psycopg.AsyncConnection.connect(
                    self.dsn, autocommit=True, **self.options
                )
                async with connection:
                    await connection.execute(f"LISTEN {CHANNEL}")
                    await connection.execute(f"LISTEN {CATALOG}")
                    self.listening, backoff = True, 0.5
                    self._wake_all()  # whatever committed while nobody listened
                    self.catalog.trust(True)
                    async for note in connection.notifies():
                        if note.channel == CATALOG:
                            self.catalog.changed()
                        else:
                            self._wake(note.payload)
            except (psycopg.Error, OSError) as error:
                if self.listening:
                    log.warning("live streams lost their LISTEN connection (%r); polling", error)
            finally:
                self.catalog.trust(False)
            self.listening = False
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)

    def _wake(self, order_id: str) -> None:
        for key in (order_id, ANY):
            for woken in self.watchers.get(key, ()):
                woken.set()

    def _wake_all(self) -> None:
        for watchers in self.watchers.values():
            for woken in watchers:
                woken.set()

    @contextlib.contextmanager
    def watch(self, key: str) -> Iterator[asyncio.Event]:
        """An event set whenever an event of order `key` (or of any order: ANY) commits. Watch
        before the first read: a commit between the read and the wait still wakes."""
        woken = asyncio.Event()
        self.watchers[key].add(woken)
        try:
            yield woken
        finally:
            self.watchers[key].discard(woken)
            if not self.watchers[key]:
                del self.watchers[key]

    async def wait(self, woken: asyncio.Event, timeout_s: float) -> bool:
        """Until woken or `timeout_s` passed. True when the caller should read again: it was
        woken, or nothing listens (then it waited `poll_s` at most, and reads to find out)."""
        polling = not self.listening
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(timeout_s, self.poll_s) if polling else timeout_s):
                await woken.wait()
        read = woken.is_set() or polling
        woken.clear()
        return read
