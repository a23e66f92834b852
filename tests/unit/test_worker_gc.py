"""A worker's main process freezes what is alive before it forks a pool child; a child freezes
what is alive after its first task, once."""

import gc

from celery import signals

from fulfillment import celery_app


def test_the_first_task_freezes_the_live_objects_and_later_tasks_do_not(monkeypatch):
    monkeypatch.setattr(celery_app, "_frozen", False)
    gc.unfreeze()
    try:
        assert gc.get_freeze_count() == 0
        signals.task_postrun.send(sender=None)
        frozen = gc.get_freeze_count()
        assert frozen > 10_000  # the modules and everything they hold
        kept: list[list[int]] = [[] for _ in range(1_000)]  # live objects made after the first task
        signals.task_postrun.send(sender=None)
        assert gc.get_freeze_count() == frozen
        assert kept
    finally:
        gc.unfreeze()


def test_the_main_process_freezes_the_live_objects_before_it_forks_a_child():
    gc.unfreeze()
    try:
        assert gc.get_freeze_count() == 0
        signals.worker_before_create_process.send(sender=None)
        assert gc.get_freeze_count() > 10_000  # the modules and everything they hold
    finally:
        gc.unfreeze()
