"""The lingering close: half-closed at once, closed when the client closes, at the deadline, or
at once when too many linger (cds_service/ops/lingering_close.py)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from cds_service.ops.lingering_close import LingeringCloser

WAIT_BOUND_S = 10.0  # a bound for a loaded machine, not a measurement


def _eventually(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT_BOUND_S
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def test_the_server_side_is_half_closed_at_once_and_closed_when_the_client_closes() -> None:
    closer = LingeringCloser(linger_s=60)
    server, client = socket.socketpair()
    closer.close(server)
    assert client.recv(10) == b""  # the answer is complete: the client sees the end at once
    assert closer.lingering() == 1  # and the server side waits for the client
    client.sendall(b"late request bytes")  # read and dropped, never a reset
    client.close()
    assert _eventually(lambda: closer.lingering() == 0)
    assert server.fileno() == -1


def test_a_client_that_never_closes_is_closed_at_the_deadline() -> None:
    closer = LingeringCloser(linger_s=0.2)
    server, client = socket.socketpair()
    closer.close(server)
    assert closer.lingering() == 1
    assert _eventually(lambda: closer.lingering() == 0)
    assert server.fileno() == -1
    client.close()


def test_a_client_that_keeps_sending_is_closed_after_the_drain_limit() -> None:
    closer = LingeringCloser(linger_s=60, max_drain=1000)
    server, client = socket.socketpair()
    closer.close(server)
    client.sendall(b"x" * 2000)
    assert _eventually(lambda: closer.lingering() == 0)
    client.close()


def test_beyond_the_bound_a_connection_is_closed_at_once() -> None:
    closer = LingeringCloser(linger_s=60, max_connections=1)
    first, first_client = socket.socketpair()
    second, second_client = socket.socketpair()
    closer.close(first)
    closer.close(second)
    assert second.fileno() == -1  # closed before close() returned
    assert closer.lingering() == 1
    first_client.close()
    second_client.close()
    assert _eventually(lambda: closer.lingering() == 0)


def test_a_socket_whose_client_is_gone_is_closed_at_once() -> None:
    closer = LingeringCloser(linger_s=60)
    server, client = socket.socketpair()
    server.close()  # shutdown on a closed socket fails
    closer.close(server)
    assert closer.lingering() == 0
    client.close()
