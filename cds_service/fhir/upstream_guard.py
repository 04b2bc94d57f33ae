"""Per-upstream-host admission: a concurrency cap and a circuit breaker, per process.

A slow or failing FHIR server must not take the fetch path from the calls that go to healthy
servers. Each hook call asks ``enter`` before contacting a server (scheme, host and port):

- at most ``max_calls`` calls per server are in progress at once; one more waits for a slot
  until its hook call's deadline, then is refused ("saturated"): a busy but healthy server
  queues calls. At most ``max_waiting`` calls wait; any more are refused at once, so a slow
  server holds at most ``max_calls + max_waiting`` of the process's threads and the others
  stay free for calls to other servers;
- after ``failures_to_open`` calls in a row fail on the network (timeout, connection, 5xx), the
  server is not contacted for ``open_s`` seconds ("circuit-open"); then one trial call is let
  through, and its outcome closes or re-opens the circuit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _HostState:
    in_flight: int = 0
    waiting: int = 0
    failures: int = 0
    open_until: float = 0.0
    trial_running: bool = False


class Refused(Exception):
    """The server is not contacted for this call; ``reason`` is a metric label."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class HostGuard:
    def __init__(
        self,
        max_calls: int,
        failures_to_open: int = 3,
        *,
        max_waiting: int | None = None,
        open_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_calls = max_calls
        # Default: half as many as may be in progress (with 16 threads: 8 fetching, 4 waiting).
        self.max_waiting = max(1, max_calls // 2) if max_waiting is None else max_waiting
        self.failures_to_open = failures_to_open
        self.open_s = open_s
        self._clock = clock
        self._lock = threading.Lock()
        self._slot_freed = threading.Condition(self._lock)
        self._hosts: dict[str, _HostState] = {}

    def enter(self, host: str, deadline: float | None = None) -> bool:
        """Admit one call to ``host`` (waiting for a slot until ``deadline``, on this guard's
        clock) or raise ``Refused``; returns True for a trial call."""
        with self._lock:
            state = self._hosts.setdefault(host, _HostState())
            trial = False
            if state.failures >= self.failures_to_open:
                if self._clock() < state.open_until or state.trial_running:
                    raise Refused(
                        "the FHIR server failed repeatedly and is not contacted for a while",
                        "circuit-open",
                    )
                trial = state.trial_running = True
            full = state.in_flight >= self.max_calls
            if full and deadline is not None and state.waiting < self.max_waiting:
                self._wait_for_slot(state, deadline)
            if state.in_flight >= self.max_calls:
                if trial:
                    state.trial_running = False
                raise Refused(
                    f"{self.max_calls} calls to this FHIR server are already in progress",
                    "saturated",
                )
            state.in_flight += 1
            return trial

    def _wait_for_slot(self, state: _HostState, deadline: float) -> None:
        """Wait (the lock released meanwhile) until a slot is free or the deadline passes."""
        state.waiting += 1
        try:
            while state.in_flight >= self.max_calls:
                remaining = deadline - self._clock()
                if remaining <= 0 or not self._slot_freed.wait(remaining):
                    return
        finally:
            state.waiting -= 1

    def leave(self, host: str, *, failed: bool, trial: bool) -> None:
        with self._lock:
            state = self._hosts[host]
            state.in_flight -= 1
            self._slot_freed.notify_all()
            if trial:
                state.trial_running = False
            if not failed:
                state.failures = 0
                return
            state.failures += 1
            if state.failures >= self.failures_to_open:
                state.open_until = self._clock() + self.open_s
