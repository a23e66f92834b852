"""The lightest tier: fire-and-forget asyncio tasks, held in a registry.

The event loop keeps only weak references to tasks, so a task nobody holds can be garbage
collected mid-flight. The registry holds each one until it is done, caps how many may be in
flight (beyond it new work is dropped and counted, never queued without bound), logs and counts
failures, and on shutdown drains with a timeout, then cancels the rest. For work that may be
lost; what must survive a crash goes through the outbox.
"""

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from prometheus_client import Counter

log = logging.getLogger(__name__)

DROPPED = Counter("orders_background_dropped_total", "Fire-and-forget tasks dropped at the cap")
FAILED = Counter("orders_background_failed_total", "Fire-and-forget tasks that raised")


class TaskRegistry:
    def __init__(self, max_in_flight: int) -> None:
        self.max_in_flight = max_in_flight
        self.tasks: set[asyncio.Task[Any]] = set()
        self.dropped = 0
        self.failed = 0

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> bool:
        """Run `coro` in the background; False (and counted) if the registry is full."""
        if len(self.tasks) >= self.max_in_flight:
            coro.close()
            self.dropped += 1
            DROPPED.inc()
            return False
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self._done)
        return True

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            self.failed += 1
            FAILED.inc()
            log.error("background task %s failed: %r", task.get_name(), error)

    async def drain(self, timeout_s: float) -> int:
        """Wait up to `timeout_s` for what is in flight, then cancel the rest; returns how many
        were cancelled."""
        if not self.tasks:
            return 0
        _, pending = await asyncio.wait(set(self.tasks), timeout=timeout_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return len(pending)
