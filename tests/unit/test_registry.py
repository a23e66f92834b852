"""The fire-and-forget registry: holds tasks until done, caps, counts failures, drains."""

import asyncio
import gc
import logging

import pytest

from orders.api.background import TaskRegistry


async def test_a_pending_task_survives_garbage_collection_until_it_is_done():
    registry = TaskRegistry(max_in_flight=10)
    release = asyncio.Event()
    finished: list[str] = []

    async def ping() -> None:
        await release.wait()
        finished.append("pinged")

    assert registry.spawn(ping(), name="ping")
    await asyncio.sleep(0)
    gc.collect()  # nobody but the registry holds the task
    assert len(registry.tasks) == 1
    release.set()
    await asyncio.sleep(0.01)
    assert finished == ["pinged"]
    assert registry.tasks == set()  # the done callback let go of it


async def test_beyond_the_cap_work_is_dropped_and_counted():
    registry = TaskRegistry(max_in_flight=2)
    gate = asyncio.Event()
    assert registry.spawn(gate.wait(), name="a")
    assert registry.spawn(gate.wait(), name="b")
    assert not registry.spawn(gate.wait(), name="c")
    assert registry.dropped == 1
    gate.set()
    await registry.drain(1)


async def test_failures_are_logged_and_counted(caplog: pytest.LogCaptureFixture):
    registry = TaskRegistry(max_in_flight=10)

    async def broken() -> None:
        raise RuntimeError("analytics down")

    with caplog.at_level(logging.ERROR):
        registry.spawn(broken(), name="analytics")
        await asyncio.sleep(0.01)
    assert registry.failed == 1
    assert "analytics down" in caplog.text


async def test_shutdown_drains_then_cancels_what_is_left():
    registry = TaskRegistry(max_in_flight=10)
    done: list[str] = []

    async def quick() -> None:
        await asyncio.sleep(0.01)
        done.append("quick")

    async def stuck() -> None:
        await asyncio.sleep(3600)

    registry.spawn(quick(), name="quick")
    stuck_task_spawned = registry.spawn(stuck(), name="stuck")
    assert stuck_task_spawned
    cancelled = await registry.drain(timeout_s=0.5)
    assert done == ["quick"]
    assert cancelled == 1
    assert registry.tasks == set()
