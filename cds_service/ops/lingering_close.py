"""Closing answered connections without holding the thread that accepts new ones.

gunicorn closes a connection that is not kept alive "gracefully" (RFC 9112 section 9.6): it
half-closes its side, then reads until the client closes too, up to 2 s, so that request bytes
still on their way do not make the kernel answer with a reset that could destroy the response.
A gthread worker does this on its main thread, the one that accepts connections and hands
finished calls back, and a sync worker in its only thread: a client that reads its answer and
keeps the connection open stops the whole worker for 2 s (measured: two such clients delayed
other calls by 1.7 and 2.0 s; ``tests/security/test_lingering_close.py``). With keep-alive off
(the shipped configuration) every answer ends this way.

``LingeringCloser.close`` half-closes at once and leaves the waiting to one background thread
per worker process, which watches every lingering connection together (a selector) and closes
each when its client closes, when it has read ``max_drain`` bytes, or at its deadline. The
thread that accepts never waits. Bounded: at most ``max_connections`` linger; beyond that a
connection is closed at once (what gunicorn did before graceful closing).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import threading
import time
from collections import deque

LINGER_S = 2.0  # gunicorn's own bound
MAX_DRAIN_BYTES = 65536  # gunicorn's own bound
MAX_LINGERING = 1024  # connections waiting for their client to close, per worker process


class LingeringCloser:
    def __init__(
        self,
        linger_s: float = LINGER_S,
        max_drain: int = MAX_DRAIN_BYTES,
        max_connections: int = MAX_LINGERING,
    ) -> None:
        self.linger_s = linger_s
        self.max_drain = max_drain
        self.max_connections = max_connections
        self._incoming: deque[socket.socket] = deque()
        self._lock = threading.Lock()
        self._count = 0  # lingering or about to
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._thread = threading.Thread(target=self._run, name="lingering-close", daemon=True)
        self._thread.start()

    def close(self, sock: socket.socket, *_ignored: object) -> None:
        """Half-close ``sock`` now and close it once its client has (gunicorn's
        ``util.close_graceful``, same arguments; its bounds are this closer's)."""
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            _close(sock)  # the client is gone already
            return
        with self._lock:
            if self._count >= self.max_connections:
                full = True
            else:
                full = False
                self._count += 1
                self._incoming.append(sock)
        if full:
            _close(sock)
            return
        with contextlib.suppress(OSError):  # a full pipe: the thread is awake and will find it
            os.write(self._wake_write, b"\0")

    def lingering(self) -> int:
        """Connections not closed yet (for tests)."""
        with self._lock:
            return self._count

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._wake_read, selectors.EVENT_READ, None)
        deadlines: dict[socket.socket, tuple[float, int]] = {}  # socket -> (deadline, drained)
        while True:
            timeout = None
            if deadlines:
                timeout = max(0.0, min(d for d, _ in deadlines.values()) - time.monotonic())
            for key, _events in selector.select(timeout):
                if key.data is None:
                    self._take_incoming(selector, deadlines)
                    continue
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                deadline, drained = deadlines[sock]
                received = _drain(sock, self.max_drain - drained)
                if received is None or drained + received >= self.max_drain:
                    self._finish(selector, deadlines, sock)
                else:
                    deadlines[sock] = (deadline, drained + received)
            now = time.monotonic()
            for sock in [s for s, (deadline, _) in deadlines.items() if deadline <= now]:
                self._finish(selector, deadlines, sock)

    def _take_incoming(
        self,
        selector: selectors.BaseSelector,
        deadlines: dict[socket.socket, tuple[float, int]],
    ) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self._wake_read, 4096)
        with self._lock:
            arrived = list(self._incoming)
            self._incoming.clear()
        deadline = time.monotonic() + self.linger_s
        for sock in arrived:
            try:
                sock.setblocking(False)
                selector.register(sock, selectors.EVENT_READ, sock)
            except (OSError, ValueError):
                self._released(sock)
                continue
            deadlines[sock] = (deadline, 0)

    def _finish(
        self,
        selector: selectors.BaseSelector,
        deadlines: dict[socket.socket, tuple[float, int]],
        sock: socket.socket,
    ) -> None:
        del deadlines[sock]
        with contextlib.suppress(KeyError, ValueError):
            selector.unregister(sock)
        self._released(sock)

    def _released(self, sock: socket.socket) -> None:
        _close(sock)
        with self._lock:
            self._count -= 1


def _drain(sock: socket.socket, limit: int) -> int | None:
    """Bytes read from what the client sent, up to ``limit``; None once it has closed."""
    received = 0
    while received < limit:
        try:
            data = sock.recv(min(4096, limit - received))
        except BlockingIOError:
            return received
        except OSError:
            return None
        if not data:
            return None
        received += len(data)
    return received


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()
