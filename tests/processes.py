"""Real processes for the integration tests: Celery workers, the relay, a TCP proxy to cut."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.support import ROOT


def wait_until(condition: Callable[[], object], timeout_s: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what or condition}")
        time.sleep(0.05)


class Process:
    """A child process in its own process group, logging to a file the test can read."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name, self.args, self.env = name, args, env
        self.log_path = log_dir / f"{name}.log"
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self, ready_text: str | None = None, timeout_s: float = 60) -> "Process":
        offset = self.spawn()
        if ready_text:
            self.wait_ready(ready_text, offset, timeout_s)
        return self

    def spawn(self) -> int:
        """Start without waiting; returns the log offset to wait from."""
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.args,
            cwd=ROOT,
            env=os.environ | self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return offset

    def wait_ready(self, ready_text: str, offset: int = 0, timeout_s: float = 60) -> None:
        wait_until(
            lambda: self._alive() and ready_text in self.log()[offset:],
            timeout_s,
            f"{self.name} to log {ready_text!r}",
        )

    def _alive(self) -> bool:
        if self.popen is None or self.popen.poll() is not None:
            raise AssertionError(f"{self.name} exited; log:\n{self.log()[-3000:]}")
        return True

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole group: a Celery worker's pool children die with it."""
        if self.popen is not None and self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)
            self.popen.wait(timeout=30)

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)


def celery_worker(
    env: dict[str, str], log_dir: Path, name: str = "worker", queues: str = "orders,invoices"
) -> Process:
    args = [
        str(Path(sys.executable).with_name("celery")),
        "-A",
        "fulfillment.celery_app",
        "worker",
        "-Q",
        queues,
        "--concurrency",
        "2",
        "--loglevel",
        "INFO",
        "--hostname",
        f"{name}-{os.getpid()}@%h",
        "--without-gossip",
        "--without-mingle",
    ]
    return Process(name, args, env, log_dir)


def relay(env: dict[str, str], log_dir: Path) -> Process:
    return Process("relay", [sys.executable, "-m", "fulfillment.relay"], env, log_dir)


class TcpProxy:
    """Forwards a loopback port to a target; `cut()` drops every connection and refuses new ones
    until `restore()`: a broker outage as its clients see it."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.sockets: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.open = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.open = False
        with self.lock:
            for s in self.sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self.sockets.clear()

    def restore(self) -> None:
        self.open = True

    def close(self) -> None:
        self.cut()
        self.server.close()
