"""The sockets under the FHIR fetch: one deadline per hook call, enforced on the socket.

A per-read timeout does not bound a server that trickles a byte at a time, and a deadline
checked between chunks does not stop a read that is blocked. So every connection a fetch uses is
registered with its hook call (``CallSockets``); when the call's deadline passes, the calling
thread shuts those sockets down, which ends any blocked connect, header read or body read at
once and frees the fetch thread. A connection that is opened after that moment is refused.

Connections are opened here (not by urllib3) so that the address actually contacted is the one
the fhirServer policy checked after DNS resolution (``AddressCheck``): a name that resolves to
an allowed address at check time cannot be swapped for another one at connect time.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

# host, port -> the resolved addresses that may be contacted (raises to refuse the host)
AddressCheck = Callable[[str, int], list[tuple[Any, ...]]]


class CallClosed(OSError):
    """The hook call's deadline has passed: no new connection is opened for it."""


class CallSockets:
    """The connections one hook call has in use, shut down together at its deadline."""

    def __init__(self, deadline: float, address_check: AddressCheck | None = None) -> None:
        self.deadline = deadline
        self.address_check = address_check
        self._lock = threading.Lock()
        self._connections: set[HTTPConnection] = set()
        self._closed = False
        self.entries = 0  # resources read by all queries of the call
        self.bytes = 0  # body bytes read by all queries of the call

    def spend(self, entries: int = 0, size: int = 0) -> tuple[int, int]:
        """Count what a query read; returns the call's totals so far."""
        with self._lock:
            self.entries += entries
            self.bytes += size
            return self.entries, self.bytes

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def adopt(self, connection: HTTPConnection) -> None:
        with self._lock:
            self._connections.add(connection)

    def release(self, connection: HTTPConnection) -> None:
        with self._lock:
            self._connections.discard(connection)

    def check_open(self, sock: socket.socket) -> None:
        """Called with a freshly connected socket: refuse it if the call has ended meanwhile."""
        with self._lock:
            if self._closed or self.remaining() <= 0:
                sock.close()
                raise CallClosed("the hook call's time budget is spent")

    def close(self) -> int:
        """Shut down every connection still in use; returns how many were cut."""
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, set()
        cut = 0
        for connection in connections:
            sock = connection.sock
            if sock is None:
                continue
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv or send
                cut += 1
            except OSError:
                pass  # already closed by its own thread
        return cut


_bound = threading.local()


@contextmanager
def bound_to(call: CallSockets | None) -> Iterator[None]:
    """Connections this thread takes from the pool while inside belong to ``call``."""
    previous = getattr(_bound, "call", None)
    _bound.call = call
    try:
        yield
    finally:
        _bound.call = previous


def current_call() -> CallSockets | None:
    """The hook call this thread's fetch belongs to (None outside a fetch)."""
    return _current_call()


def _current_call() -> CallSockets | None:
    return getattr(_bound, "call", None)


class _Guarded:
    """Mixed into urllib3's connections: open the socket to a checked address, on the clock."""

    host: str
    port: int
    timeout: Any
    socket_options: Any

    def _new_conn(self) -> socket.socket:
        call = _current_call()
        timeout = self.timeout if isinstance(self.timeout, int | float) else None
        if call is not None:
            remaining = call.remaining()
            if remaining <= 0:
                raise NewConnectionError(self, "the hook call's time budget is spent")  # type: ignore[arg-type]
            timeout = remaining if timeout is None else min(timeout, remaining)
        check = (call.address_check if call is not None else None) or _any_address
        addresses = check(self.host, self.port)
        error: OSError | None = None
        for family, kind, proto, _name, address in addresses:
            sock = socket.socket(family, kind, proto)
            try:
                for level, option, value in self.socket_options or ():
                    sock.setsockopt(level, option, value)
                sock.settimeout(timeout)
                sock.connect(address)
            except TimeoutError as exc:
                sock.close()
                raise ConnectTimeoutError(self, f"connect to {self.host} timed out") from exc
            except OSError as exc:
                sock.close()
                error = exc
                continue
            if call is not None:
                try:
                    call.check_open(sock)
                except CallClosed as exc:
                    raise NewConnectionError(self, str(exc)) from exc  # type: ignore[arg-type]
            return sock
        raise NewConnectionError(self, f"could not connect: {error}")  # type: ignore[arg-type]


def _any_address(host: str, port: int) -> list[tuple[Any, ...]]:
    return list(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))


class _GuardedHTTPConnection(_Guarded, HTTPConnection):
    pass


class _GuardedHTTPSConnection(_Guarded, HTTPSConnection):
    pass


class _PoolMixin:
    """Hand each connection taken from the pool to the current hook call, take it back after."""

    def _get_conn(self, timeout: float | None = None) -> Any:
        connection = super()._get_conn(timeout)  # type: ignore[misc]
        call = _current_call()
        if call is not None:
            call.adopt(connection)
        return connection

    def _put_conn(self, conn: Any) -> None:
        call = _current_call()
        if call is not None and conn is not None:
            call.release(conn)
        super()._put_conn(conn)  # type: ignore[misc]


class _Pool(_PoolMixin, HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _SecurePool(_PoolMixin, HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


def guarded_session(workers: int) -> requests.Session:
    """A pooled session whose sockets obey the hook call's deadline and address check."""

    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=8, pool_maxsize=workers, max_retries=0)
    adapter.poolmanager.pool_classes_by_scheme = {"http": _Pool, "https": _SecurePool}
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.trust_env = False  # no proxies from the environment in front of PHI traffic
    return session
