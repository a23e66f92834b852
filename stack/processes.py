"""Processes on this machine: each in its own process group (a Celery worker's pool children
stop with it), each logging to a file, each started with a way to tell that it is ready."""

import asyncio
import functools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from orders.messages import QUEUES

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
WORKER_READY, RELAY_READY = "ready.", "relay started"


def exit_on_sigterm() -> None:
    """SIGTERM as SystemExit, so that a program that started a Stack (the demo, the bench) and is
    stopped from outside still runs its `finally` and stops those processes: each is in a session
    of its own and would outlive its parent, taking messages from the queues."""
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(condition: Callable[[], object], timeout_s: float = 30, what: str = "") -> None:
    """Poll `condition` until it is true; fail after `timeout_s`. For code that is not async."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what or condition}")
        time.sleep(0.05)


async def eventually(
    condition: Callable[[], object], timeout_s: float = 30, what: str = ""
) -> None:
    """`wait_until` without blocking the event loop (the API in process may run on it)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what or condition}")
        await asyncio.sleep(0.05)


@functools.cache
def loopback_client(timeout_s: float = 0.5) -> httpx.Client:
    """One client per timeout for the calls the harness and the tests make again and again
    (readiness probes, the fakes' admin API): building one costs ~20 ms of CPU (its TLS context),
    which, polled every 50 ms, would take a core from the process being waited for."""
    return httpx.Client(timeout=timeout_s)


def answers(url: str) -> bool:
    try:
        loopback_client().get(url)
    except httpx.TransportError:
        return False
    return True


class Process:
    """A child process and its log. Ready when its log shows `ready_text` (from this start on) or
    `ready_url` answers."""

    def __init__(
        self,
        name: str,
        args: list[str],
        env: dict[str, str],
        log_path: Path,
        ready_text: str | None = None,
        ready_url: str | None = None,
    ) -> None:
        self.name, self.args, self.env, self.log_path = name, args, env, log_path
        self.ready_text, self.ready_url = ready_text, ready_url
        self.popen: subprocess.Popen[bytes] | None = None
        self.offset = 0
        self.terminated = False

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def spawn(self) -> "Process":
        self.terminated = False
        self.offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                self.args,
                cwd=ROOT,
                env=os.environ | self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def wait_ready(self, timeout_s: float = 60) -> "Process":
        def ready() -> bool:
            if self.popen is None or self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited; its log ends:\n{self.log()[-3000:]}")
            if self.ready_text is not None:
                return self.ready_text in self.log()[self.offset :]
            return self.ready_url is None or answers(self.ready_url)

        wait_until(ready, timeout_s, f"{self.name} to be ready")
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole group, and wait for the process to go."""
        self.terminated = True
        if self.running():
            os.killpg(self.pid, sig)
            assert self.popen is not None
            self.popen.wait(timeout=30)

    def terminate(self) -> None:
        """SIGTERM to the process itself, which stops its own children (a Celery worker waits
        for its pool; signalling the pool too can leave the worker waiting for children that
        are gone)."""
        if self.running() and not self.terminated:
            os.kill(self.pid, signal.SIGTERM)
            self.terminated = True

    def stop(self, timeout_s: float = 15) -> bool:
        """SIGTERM, then SIGKILL to the whole group after `timeout_s`; False if it had to be
        killed."""
        self.terminate()
        if self.popen is None:
            return True
        try:
            self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return False
        return True


class Stack:
    """The processes of one run, each logging to `log_dir/<name>.log`. Start several, then wait
    for all (`ready`): each takes seconds to import, so they start side by side."""

    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        self.log_dir = log_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.env = dict(env)
        self.processes: list[Process] = []

    def start(
        self,
        name: str,
        args: list[str],
        ready_text: str | None = None,
        ready_url: str | None = None,
        env: dict[str, str] | None = None,
    ) -> Process:
        log_path = self.log_dir / f"{name}.log"
        process = Process(name, args, self.env | (env or {}), log_path, ready_text, ready_url)
        self.processes.append(process.spawn())
        return process

    def ready(self, timeout_s: float = 60) -> "Stack":
        """Wait for every process that was not stopped on purpose; one that exited by itself
        fails with the end of its log."""
        for process in self.processes:
            if not process.terminated:
                process.wait_ready(timeout_s)
        return self

    def exited(self) -> list[Process]:
        """The processes that stopped without being told to."""
        return [p for p in self.processes if not p.terminated and not p.running()]

    def python(
        self, name: str, *args: str, ready_text: str | None = None, ready_url: str | None = None
    ) -> Process:
        return self.start(name, [sys.executable, *args], ready_text, ready_url)

    def api(
        self, port: int, app: str = "orders.main:app", *options: str, name: str = "api"
    ) -> Process:
        url = f"http://127.0.0.1:{port}"
        args = ["-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)]
        # Live streams stay open: without a bound, uvicorn would wait for them to end on shutdown.
        args += ["--timeout-graceful-shutdown", "5", *options]
        return self.python(name, *args, ready_url=f"{url}/health/live")

    def relay(self, name: str = "relay") -> Process:
        return self.python(name, "-m", "fulfillment.relay", ready_text=RELAY_READY)

    def worker(
        self,
        name: str = "worker",
        queues: str = ",".join(QUEUES),
        concurrency: int = 2,
        loglevel: str = "INFO",
    ) -> Process:
        """A Celery worker named `name`, taking `queues` with `concurrency` prefork processes."""
        args = [
            str(BIN / "celery"),
            "-A",
            "fulfillment.celery_app",
            "--quiet",  # no banner: the log is JSON lines
            "worker",
            "--hostname",
            f"{name}-{os.getpid()}@%h",
            "-Q",
            queues,
            "--concurrency",
            str(concurrency),
            "--loglevel",
            loglevel,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
        return self.start(name, args, ready_text=WORKER_READY)

    def fake(self, module: str, port: int, *options: str) -> Process:
        """One of fakes/ (gateway, warehouse, receiver), ready when its admin API answers."""
        name = module.rsplit(".", 1)[-1]
        url = f"http://127.0.0.1:{port}/"  # any answer: it is listening
        return self.python(name, "-m", module, "--port", str(port), *options, ready_url=url)

    def smtp_sink(self, port: int, maildir: Path) -> Process:
        """aiosmtpd on loopback, every message kept in `maildir`."""
        args = ["-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}"]
        handler = ["-c", "aiosmtpd.handlers.Mailbox", str(maildir)]
        return self.python("smtp", *args, *handler)

    def named(self, name: str) -> Process:
        return next(p for p in reversed(self.processes) if p.name == name)

    def stop(self, only: set[str] | None = None) -> list[str]:
        """Stop every process (or those named in `only`), newest first; returns the names of
        those that had to be killed."""
        stopping = [p for p in reversed(self.processes) if only is None or p.name in only]
        for process in stopping:
            process.terminate()
        killed = [process.name for process in stopping if not process.stop()]
        self.processes = [p for p in self.processes if p not in stopping]
        return killed
