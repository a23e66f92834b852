"""Process trees read from /proc: resident memory and CPU time of each part of the stack.

A tree is a process and its descendants (uvicorn's workers, Celery's pool children, PostgreSQL's
backends). Its CPU time counts the time of children that have already exited, since a parent
collects it when it reaps them, so recycled pool children and closed connections are not lost.
"""

import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

TICK_S = 1 / os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


@dataclass(frozen=True)
class Proc:
    ppid: int
    name: str
    cpu_ticks: int  # its own user + system time, and that of the children it has reaped
    rss_kb: int
    own_ticks: int  # its own user + system time only


def snapshot() -> dict[int, Proc]:
    procs: dict[int, Proc] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # exited while we looked
        name, rest = text[text.index("(") + 1 : text.rindex(")")], text.rsplit(")", 1)[1].split()
        # rest[0] is field 3 of proc(5): state; utime..cstime are fields 14-17, rss is field 24.
        ticks, own = sum(int(x) for x in rest[11:15]), sum(int(x) for x in rest[11:13])
        rss_kb = int(rest[21]) * PAGE_KB
        procs[int(stat.parent.name)] = Proc(int(rest[1]), name, ticks, rss_kb, own)
    return procs


def tree(root: int, procs: dict[int, Proc]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, proc in procs.items():
        children.setdefault(proc.ppid, []).append(pid)
    members, frontier = set(), [root] if root in procs else []
    while frontier:
        pid = frontier.pop()
        members.add(pid)
        frontier.extend(children.get(pid, []))
    return members


def service_root(name: str, procs: dict[int, Proc]) -> int | None:
    """The oldest ancestor named `name` (PostgreSQL's postmaster, RabbitMQ's beam.smp)."""
    for pid, proc in sorted(procs.items()):
        parent = procs.get(proc.ppid)
        if proc.name == name and (parent is None or parent.name != name):
            return pid
    return None


def service_roots(procs: dict[int, Proc]) -> dict[str, int]:
    """The roots of the services the stack runs on, where found: PostgreSQL and RabbitMQ."""
    roots = {}
    for name, process in (("postgres", "postgres"), ("rabbitmq", "beam.smp")):
        if (root := service_root(process, procs)) is not None:
            roots[name] = root
    return roots


def cpu_s(roots: dict[str, int], procs: dict[int, Proc]) -> dict[str, float]:
    return {
        name: sum(procs[pid].cpu_ticks for pid in tree(root, procs)) * TICK_S
        for name, root in roots.items()
    }


@contextlib.contextmanager
def cpu_spent(roots: dict[str, int]) -> Iterator[dict[str, float]]:
    """CPU seconds each tree spent inside the block; the dict is filled when the block ends."""
    before = cpu_s(roots, snapshot())
    spent: dict[str, float] = {}
    yield spent
    after = cpu_s(roots, snapshot())
    spent.update({name: after[name] - before[name] for name in roots})


class RssSampler:
    """Peak, first and last resident memory of process trees, sampled every 0.5 s."""

    def __init__(self, roots: dict[str, int]) -> None:
        self.roots = dict(roots)
        self.samples: dict[str, list[int]] = {name: [] for name in roots}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self, names: list[str]) -> None:
        procs = snapshot()
        for name in names:
            kb = sum(procs[pid].rss_kb for pid in tree(self.roots[name], procs))
            if kb:
                self.samples[name].append(kb)

    def _run(self) -> None:
        while not self.stopping.wait(0.5):
            with self.lock:
                self._sample(list(self.roots))

    def start(self) -> None:
        self.thread.start()

    def add(self, name: str, pid: int) -> None:
        with self.lock:
            self.samples[name] = []
            self.roots[name] = pid

    def last(self, name: str) -> None:
        """One final sample of a process about to stop: its end is as it worked, not as it quit."""
        with self.lock:
            self._sample([name])
            del self.roots[name]

    def report(self) -> dict[str, dict[str, float]]:
        self.stopping.set()
        self.thread.join()
        return {
            name: {
                "start_mb": round(s[0] / 1024, 1),
                "peak_mb": round(max(s) / 1024, 1),
                "end_mb": round(s[-1] / 1024, 1),
            }
            for name, s in self.samples.items()
            if s
        }
