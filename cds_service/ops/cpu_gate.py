"""A per-process CPU gate: Python work of hook calls runs one call at a time, in arrival order.

With several threads per gunicorn worker, CPU-bound hook calls share one GIL: the interpreter
switches between them every few milliseconds, so every call lasts as long as all of them
together (a convoy: p99 many times p50). With one thread per worker, a call that waits on a
slow FHIR server holds the whole process. The gate gives both: a hook call holds the gate while
it computes and lets go of it while it waits on the network (``released``), so computation runs
call after call as in a single-threaded worker, while waits overlap as in a threaded one.

The gate is a ticket queue, not a bare lock: a thread that asks for it is served after every
thread that asked before it (a bare lock lets a thread that just let go take it back at once,
and the longest waiter may wait forever). Release hands the gate directly to the next waiter.

Which thread holds which gate is thread-local, so code below (the FHIR transport) only says
"this is a network wait" (``released``): a no-op in a thread that holds no gate (a command-line
run, a test, a worker with the gate switched off).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class CpuGate:
    """One holder at a time; waiters are served first come, first served."""

    def __init__(self, on_wait: Callable[[float], None] | None = None) -> None:
        """``on_wait`` is told how long each acquisition waited (seconds; 0 when free)."""
        self._lock = threading.Lock()
        self._held = False
        self._queue: deque[threading.Lock] = deque()
        self._on_wait = on_wait

    def acquire(self) -> None:
        started = time.perf_counter()
        with self._lock:
            if not self._held and not self._queue:
                self._held = True
                ticket = None
            else:
                ticket = threading.Lock()
                ticket.acquire()
                self._queue.append(ticket)
        if ticket is not None:
            ticket.acquire()  # released by the holder that hands the gate over (see release)
        if self._on_wait is not None:
            self._on_wait(time.perf_counter() - started)

    def release(self) -> None:
        with self._lock:
            if not self._held:
                raise RuntimeError("the CPU gate is not held")
            if self._queue:
                self._queue.popleft().release()  # the gate passes on; it stays held
            else:
                self._held = False

    def waiting(self) -> int:
        """Threads queued for the gate (for tests and metrics)."""
        with self._lock:
            return len(self._queue)


_thread = threading.local()


def current() -> CpuGate | None:
    """The gate this thread holds, if any."""
    gate: CpuGate | None = getattr(_thread, "gate", None)
    return gate


@contextmanager
def holding(gate: CpuGate | None) -> Iterator[None]:
    """Hold ``gate`` (None: nothing) for the block; a no-op if this thread holds it already."""
    if gate is None or current() is gate:
        yield
        return
    gate.acquire()
    _thread.gate = gate
    try:
        yield
    finally:
        _thread.gate = None
        gate.release()


@contextmanager
def released() -> Iterator[None]:
    """A wait on something outside the process: let go of this thread's gate for the block and
    queue for it again afterwards (behind those who asked meanwhile). No-op without a gate."""
    gate = current()
    if gate is None:
        yield
        return
    _thread.gate = None
    gate.release()
    try:
        yield
    finally:
        gate.acquire()
        _thread.gate = gate
