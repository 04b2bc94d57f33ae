"""The fetch deadline holds at the socket: a trickling server cannot keep a fetch thread."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from cds_service.fhir.client import FetchError, FetchLimits, FetchResult, FhirFetcher, hook_call
from cds_service.fhir.upstream_guard import HostGuard, Refused
from tests.security.upstreams import healthy_server, trickle_server

QUERIES = {"patient": "Patient/p1", "observations": "Observation?patient=p1"}


def test_a_trickling_server_loses_its_threads_and_connections_at_the_deadline() -> None:
    # One fetch thread only: if the trickled read went on after the deadline, the next call
    # (to a healthy server) would find no thread and time out.
    fetcher = FhirFetcher(FetchLimits(budget_s=0.8), workers=1)
    with trickle_server() as slow, healthy_server() as healthy:
        slow_results = fetcher.fetch_many(slow.url, "token", {"patient": "Patient/p1"})
        assert isinstance(slow_results["patient"], FetchError)
        assert slow_results["patient"].reason == "timeout"
        assert slow.wait_until(lambda s: s.open_connections == 0, timeout_s=5.0)
        answered = fetcher.fetch_many(healthy, "token", QUERIES)
    assert all(isinstance(r, FetchResult) for r in answered.values()), answered
    fetcher.close()


def test_fetches_of_one_hook_call_share_one_deadline() -> None:
    fetcher = FhirFetcher(FetchLimits(budget_s=0.8), workers=4)
    with trickle_server() as slow, healthy_server() as healthy, hook_call():
        first = fetcher.fetch_many(slow.url, None, {"patient": "Patient/p1"})
        second = fetcher.fetch_many(healthy, None, QUERIES)
    assert isinstance(first["patient"], FetchError)
    # The budget was spent by the first fetch: the second gets no new one.
    assert all(isinstance(r, FetchError) and r.reason == "timeout" for r in second.values())
    fetcher.close()


def test_a_saturated_server_is_refused_at_the_deadline_and_others_are_not() -> None:
    guard = HostGuard(max_calls=1)
    fetcher = FhirFetcher(FetchLimits(budget_s=1.0), workers=4, guard=guard)
    with trickle_server() as slow, healthy_server() as healthy:
        guard.enter(f"http://127.0.0.1:{slow.port}")  # one call already in progress there
        refused = fetcher.fetch_many(slow.url, None, QUERIES)
        answered = fetcher.fetch_many(healthy, None, QUERIES)
        assert slow.accepted == 0
    assert {r.reason for r in refused.values() if isinstance(r, FetchError)} == {"saturated"}
    assert all(isinstance(r, FetchResult) for r in answered.values())
    fetcher.close()


def test_a_call_waits_for_a_slot_freed_before_its_deadline() -> None:
    """A busy but healthy server queues calls instead of refusing them."""
    guard = HostGuard(max_calls=1)
    host = "https://ehr.example.org"
    guard.enter(host)
    admitted: list[bool] = []
    waiting = threading.Thread(
        target=lambda: admitted.append(guard.enter(host, time.monotonic() + 30))
    )
    waiting.start()
    guard.leave(host, failed=False, trial=False)
    waiting.join(timeout=30)
    assert admitted == [False]  # admitted, not a trial call
    with pytest.raises(Refused) as refused:  # the slot is taken again; no time left to wait
        guard.enter(host, time.monotonic())
    assert refused.value.reason == "saturated"


def test_calls_beyond_the_waiting_room_are_refused_at_once() -> None:
    """A slow server holds at most max_calls + max_waiting threads: the next call to it is
    refused without waiting, so the process keeps threads for calls to other servers."""
    guard = HostGuard(max_calls=1, max_waiting=1)
    host = "https://slow.example.org"
    guard.enter(host)  # in progress
    outcome: list[str] = []

    def wait_for_a_slot() -> None:
        try:
            guard.enter(host, time.monotonic() + 30)
            outcome.append("admitted")
        except Refused as refused:
            outcome.append(refused.reason)

    waiting = threading.Thread(target=wait_for_a_slot)
    waiting.start()
    while not guard_waiting(guard, host):  # the waiting room is full
        time.sleep(0.01)
    started = time.monotonic()
    with pytest.raises(Refused) as refused:
        guard.enter(host, started + 30)  # would wait 30 s if it were let in to wait
    assert refused.value.reason == "saturated"
    assert guard_waiting(guard, host)  # refused while the other call still waits
    guard.leave(host, failed=False, trial=False)
    waiting.join(timeout=30)
    assert outcome == ["admitted"]


def guard_waiting(guard: HostGuard, host: str) -> bool:
    return guard._hosts[host].waiting > 0  # the guard's own state


def test_repeated_network_failures_open_the_circuit_then_one_trial_closes_it() -> None:
    now = [0.0]
    guard = HostGuard(max_calls=4, failures_to_open=2, open_s=10.0, clock=lambda: now[0])
    host = "https://ehr.example.org"
    for _ in range(2):
        trial = guard.enter(host)
        guard.leave(host, failed=True, trial=trial)
    with pytest.raises(Refused) as refused:
        guard.enter(host)
    assert refused.value.reason == "circuit-open"
    now[0] = 11.0
    assert guard.enter(host) is True  # the trial call
    guard.leave(host, failed=False, trial=True)
    assert guard.enter(host) is False  # closed again


def test_a_read_timed_out_at_the_deadline_is_named_as_the_spent_budget() -> None:
    """The thread reading a query and the one cutting the calls at the deadline race; either way
    the query's error says the budget was spent (one message for one cause)."""
    fetcher = FhirFetcher(FetchLimits(budget_s=0.3), workers=1)
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/fhir/Patient/p1"
        with pytest.raises(FetchError) as raised:
            fetcher._get_json(url, None, time.monotonic() + 0.3)  # the reading thread's side
    assert (raised.value.reason, str(raised.value)) == (
        "timeout",
        "no answer within the 0.3 s budget",
    )
    fetcher.close()
