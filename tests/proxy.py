"""A TCP proxy on loopback for fault tests, between a client under test and a real server.

`cut()` drops every connection and refuses new ones until `restore()`: an outage as its clients
see it. `freeze()` stops forwarding on the connections open at that moment, in both directions,
without closing them (a partition: what is sent is taken and never answered), while new
connections work; `thaw()` lets the frozen ones carry on."""

import contextlib
import socket
import threading


class TcpProxy:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.sockets: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.open = True
        self.generation = 0  # of connections; those up to `frozen_up_to` are frozen
        self.frozen_up_to = -1
        self.thawed = threading.Condition(self.lock)
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
            upstream.settimeout(None)
            with self.lock:
                self.generation += 1
                generation = self.generation
                self.sockets.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b, generation), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, generation: int) -> None:
        try:
            while data := source.recv(65536):
                with self.thawed:  # a frozen connection holds what it got, and reads no more
                    self.thawed.wait_for(lambda: generation > self.frozen_up_to)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def freeze(self) -> None:
        with self.lock:
            self.frozen_up_to = self.generation

    def thaw(self) -> None:
        with self.thawed:
            self.frozen_up_to = -1
            self.thawed.notify_all()

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
        self.thaw()
        self.cut()
        self.server.close()
