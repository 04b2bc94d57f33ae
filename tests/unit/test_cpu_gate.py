"""The per-process CPU gate: first come first served, let go of around network waits, never
held while the FHIR fetch or a request body is waited for. Events and queues only: no timing."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from cds_service.common.settings import Settings
from cds_service.fhir.client import FetchLimits, FetchResult, FhirFetcher
from cds_service.fhir.upstream_guard import HostGuard
from cds_service.ops.cpu_gate import CpuGate, current, holding, released
from cds_service.storage.card_log import CardLogWriter
from cds_service.storage.spool import Spool
from cds_service.storage.store import (
    CardLog,
    CardLogEntry,
    DatabaseReplayCache,
    LoggedCard,
    Store,
)
from cds_service.web.cpu_gating import CpuGated, install_cpu_gate, read_body_first
from tests import factories as f
from tests.security.upstreams import answer_json, healthy_server

BOUND_S = 20.0  # how long a step may take on a loaded machine before the test calls it stuck


def until(condition: Callable[[], bool]) -> None:
    ends = time.monotonic() + BOUND_S
    while not condition():
        if time.monotonic() > ends:
            pytest.fail("condition not reached")
        time.sleep(0.005)


def started(target: Callable[[], Any]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def acquired_elsewhere(gate: CpuGate) -> tuple[threading.Event, threading.Event]:
    """Another thread takes ``gate`` (sets the first event) and keeps it until the second is
    set."""
    got, done = threading.Event(), threading.Event()

    def take() -> None:
        with holding(gate):
            got.set()
            done.wait(BOUND_S)

    started(take)
    return got, done


# ------------------------------------------------------------------ the gate


def test_waiters_are_served_in_the_order_they_asked() -> None:
    gate = CpuGate()
    order: list[int] = []
    threads = []
    with holding(gate):
        for number in range(5):

            def run(number: int = number) -> None:
                with holding(gate):
                    order.append(number)

            threads.append(started(run))
            queued = number + 1
            until(lambda queued=queued: gate.waiting() == queued)  # type: ignore[misc]
    for thread in threads:
        thread.join(BOUND_S)
    assert order == [0, 1, 2, 3, 4]
    assert gate.waiting() == 0


def test_a_holder_that_lets_go_queues_behind_those_already_waiting() -> None:
    """No barging: a bare Lock would let the thread that just released take it straight back."""
    gate = CpuGate()
    order: list[str] = []
    with holding(gate):
        waiter = started(lambda: _append_holding(gate, order, "waiter"))
        until(lambda: gate.waiting() == 1)
        with released():
            assert current() is None
        order.append("holder again")  # only after the waiter had its turn
        assert current() is gate
    waiter.join(BOUND_S)
    assert order == ["waiter", "holder again"]


def _append_holding(gate: CpuGate, order: list[str], name: str) -> None:
    with holding(gate):
        order.append(name)


def test_released_and_holding_none_are_no_ops_without_a_gate() -> None:
    assert current() is None
    with released(), holding(None):
        assert current() is None


def test_holding_is_reentrant_and_every_acquisition_is_reported() -> None:
    waits: list[float] = []
    gate = CpuGate(on_wait=waits.append)
    with holding(gate), holding(gate):
        assert current() is gate
        with released():
            pass
    assert current() is None
    assert len(waits) == 2  # the first hold and the return after the release
    with pytest.raises(RuntimeError):
        gate.release()


# ------------------------------------------------------------------ the FHIR fetch


class _HeldServer:
    """Answers a FHIR read only when ``answer`` is set; ``asked`` is set when a request came."""

    def __init__(self) -> None:
        self.asked = threading.Event()
        self.answer = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.asked.set()
                outer.answer.wait(BOUND_S)
                answer_json(self, b'{"resourceType": "Patient", "id": "p1"}')

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/fhir"


@contextmanager
def held_server() -> Iterator[_HeldServer]:
    held = _HeldServer()
    started(held.server.serve_forever)
    try:
        yield held
    finally:
        held.answer.set()
        held.server.shutdown()
        held.server.server_close()


def _fetch_holding(
    gate: CpuGate, fetcher: FhirFetcher, url: str, results: list[Any]
) -> threading.Thread:
    """A request thread: holds the gate and fetches, as a gated hook call does."""

    def run() -> None:
        with holding(gate):
            results.append(fetcher.fetch_many(url, None, {"patient": "Patient/p1"}))
            results.append(current() is gate)  # holds it again when the fetch is done

    return started(run)


def test_a_call_waiting_on_its_fhir_server_does_not_hold_the_gate() -> None:
    takers: list[str] = []
    gate = CpuGate(on_wait=lambda _s: takers.append(threading.current_thread().name))
    fetcher = FhirFetcher(FetchLimits(budget_s=BOUND_S), workers=2)
    results: list[Any] = []
    with held_server() as server:
        request_thread = _fetch_holding(gate, fetcher, server.url, results)
        assert server.asked.wait(BOUND_S)
        other, other_done = acquired_elsewhere(gate)  # another call computes meanwhile
        assert other.wait(BOUND_S), "the waiting call kept the CPU gate"
        server.answer.set()
        other_done.set()
        request_thread.join(BOUND_S)
    fetcher.close()
    assert isinstance(results[0]["patient"], FetchResult), results
    assert results[1] is True
    # The query's thread took the gate for its own work (parsing the answer).
    assert any(name.startswith("fhir-fetch") for name in takers), takers


def test_a_call_waiting_for_a_slot_at_a_busy_server_does_not_hold_the_gate() -> None:
    gate = CpuGate()
    guard = HostGuard(max_calls=1)
    fetcher = FhirFetcher(FetchLimits(budget_s=BOUND_S), workers=2, guard=guard)
    results: list[Any] = []
    with healthy_server() as url:
        host = url.rsplit("/fhir", 1)[0]
        guard.enter(host)  # another call holds the only slot
        request_thread = _fetch_holding(gate, fetcher, url, results)
        other, other_done = acquired_elsewhere(gate)
        assert other.wait(BOUND_S), "the call waiting for a slot kept the CPU gate"
        other_done.set()
        guard.leave(host, failed=False, trial=False)  # the slot frees: the waiting call goes on
        request_thread.join(BOUND_S)
    fetcher.close()
    assert isinstance(results[0]["patient"], FetchResult), results
    assert results[1] is True


# A SQLite file is written holding the gate (a short local write: SQLite's lock is held for the
# shortest time); a server database is a network wait, done with the gate let go. The server is
# never reached here: the writes are replaced by ones that note who held the gate.
SQLITE_HOLDS_THE_GATE = [("sqlite", True), ("postgresql", False)]


def _store(tmp_path: Path, backend: str) -> Store:
    if backend == "sqlite":
        store = Store(f"sqlite:///{tmp_path / 'cards.sqlite'}", b"key")
        store.create_schema()
        return store
    return Store("postgresql://nobody:none@127.0.0.1:9/never", b"key")  # never connected


def _writer_and_entry(store: Store, tmp_path: Path) -> tuple[CardLogWriter, CardLogEntry]:
    writer = CardLogWriter(
        store, Spool(tmp_path / "spool", max_entries=10, max_age_s=60), retry_interval_s=0.1
    )
    card = LoggedCard("c1", "mmf-teratogenicity", "pregnant", "critical", ())
    entry = store.card_log_entry("svc", "hook-1", "pt", [card], f.NOW)
    assert entry is not None
    return writer, entry


@pytest.mark.parametrize(("backend", "under_the_gate"), SQLITE_HOLDS_THE_GATE)
def test_the_card_log_is_written_outside_the_gate_only_for_a_server_database(
    tmp_path: Path, backend: str, under_the_gate: bool
) -> None:
    store = _store(tmp_path, backend)
    written_under: list[CpuGate | None] = []

    def noting(entry: CardLogEntry) -> None:
        assert entry.cards
        written_under.append(current())

    store.write_card_log = noting  # type: ignore[method-assign]
    writer, entry = _writer_and_entry(store, tmp_path)
    gate = CpuGate()
    with holding(gate):
        assert writer.record(entry) == "logged"
        assert current() is gate
    assert written_under == [gate if under_the_gate else None]
    writer.stop()


def test_a_sqlite_card_log_write_really_happens_under_the_gate(tmp_path: Path) -> None:
    store = _store(tmp_path, "sqlite")
    writer, entry = _writer_and_entry(store, tmp_path)
    gate = CpuGate()
    with holding(gate):
        other, other_done = acquired_elsewhere(gate)
        assert writer.record(entry) == "logged"
        assert not other.is_set(), "the gate was let go during a SQLite write"
    assert other.wait(BOUND_S)
    other_done.set()
    with store.sessions() as session:
        assert session.get(CardLog, "c1") is not None
    writer.stop()


@pytest.mark.parametrize(("backend", "under_the_gate"), SQLITE_HOLDS_THE_GATE)
def test_the_shared_replay_cache_is_consulted_outside_the_gate_only_for_a_server_database(
    tmp_path: Path, backend: str, under_the_gate: bool
) -> None:
    store = _store(tmp_path, backend)
    cache = DatabaseReplayCache(store)
    consulted_under: list[CpuGate | None] = []
    seen: set[tuple[str, str]] = set()

    def noting(jti: str, iss: str, expires_at: float) -> bool:
        consulted_under.append(current())
        known = (jti, iss) in seen
        seen.add((jti, iss))
        return known and expires_at > 0

    cache._seen_in_database = noting  # type: ignore[method-assign]
    gate = CpuGate()
    with holding(gate):
        assert cache.seen_before("j1", "iss", time.time() + 60) is False
        assert cache.seen_before("j1", "iss", time.time() + 60) is True
        assert current() is gate
    expected = gate if under_the_gate else None
    assert consulted_under == [expected, expected]


# ------------------------------------------------------------------ the WSGI side


class _Body(io.BytesIO):
    """A request body that notes whether the reading thread held the gate."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.read_under: list[CpuGate | None] = []

    def read(self, size: int | None = -1) -> bytes:
        self.read_under.append(current())
        return super().read(size)


def _app(seen: list[Any]) -> Callable[..., list[bytes]]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        seen.append((current(), environ["wsgi.input"].read()))
        start_response("200 OK", [])
        return [b""]

    return app


def _call(gated: CpuGated, path: str, body: _Body, **environ: Any) -> None:
    gated(
        {"PATH_INFO": path, "wsgi.input": body, "CONTENT_LENGTH": "", **environ},
        lambda *_: None,
    )


def test_requests_hold_the_gate_but_their_body_is_read_before_it_is_taken() -> None:
    gate = CpuGate()
    seen: list[Any] = []
    gated = CpuGated(_app(seen), gate, max_body_bytes=100)
    body = _Body(b'{"hook": "order-sign"}')
    _call(gated, "/cds-services/aih-order-sign", body, CONTENT_LENGTH=str(len(body.getvalue())))
    assert body.read_under == [None]  # read from the client outside the gate
    assert seen == [(gate, b'{"hook": "order-sign"}')]  # the application ran holding it
    assert current() is None


def test_probes_do_not_take_the_gate() -> None:
    gate = CpuGate()
    seen: list[Any] = []
    gated = CpuGated(_app(seen), gate, max_body_bytes=100)
    with holding(gate):  # a hook call computing in another thread would not hold them up
        for path in ("/healthz", "/readyz", "/metrics"):
            _call(gated, path, _Body(b""))
    assert [gate_seen for gate_seen, _ in seen] == [gate, gate, gate]  # ran, did not queue
    assert gate.waiting() == 0


def test_a_body_over_the_limit_is_left_for_the_application_to_refuse() -> None:
    large = _Body(b"x" * 101)
    declared_large: dict[str, Any] = {"CONTENT_LENGTH": "101", "wsgi.input": large}
    read_body_first(declared_large, 100)
    assert declared_large["wsgi.input"] is large
    assert large.read_under == []  # not read: the application answers 413 from the header
    chunked: dict[str, Any] = {"wsgi.input": _Body(b"x" * 500), "wsgi.input_terminated": True}
    read_body_first(chunked, 100)
    assert chunked["wsgi.input"].read() == b"x" * 101  # one byte more than allowed: 413


@pytest.mark.parametrize(
    ("threads", "switch", "installed"),
    [(8, "on", True), (8, "off", False), (1, "on", False)],
)
def test_the_gate_is_installed_only_with_several_threads(
    threads: int, switch: str, installed: bool
) -> None:
    app = Flask(__name__)
    settings = Settings.load(environ={"CDS_THREADS": str(threads), "CDS_CPU_GATE": switch})
    gate = install_cpu_gate(app, settings)
    assert (gate is not None) is installed
    assert isinstance(app.wsgi_app, CpuGated) is installed
