"""Prometheus metrics, correct under several gunicorn workers.

With ``PROMETHEUS_MULTIPROC_DIR`` set (deploy/gunicorn.conf.py sets and cleans it), every worker
writes its samples to files there and ``/metrics`` merges them, so any worker answers for all.
prometheus_client chooses between in-process and file-backed values when it is first imported,
so it is imported here lazily: after the gunicorn configuration has set the directory.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import Counter, Gauge, Histogram

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Hook calls are bounded by the FHIR budget (default 2 s); the tail buckets show timeouts.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)


@dataclass(frozen=True)
class Metrics:
    requests: Counter
    request_latency: Histogram
    cards: Counter
    fhir_fetch_latency: Histogram
    fhir_fetch_failures: Counter
    feedback: Counter
    card_log_entries: Counter
    card_log_dropped: Counter
    database_up: Gauge
    spool_depth: Gauge
    spool_oldest_age: Gauge
    spool_dropped: Gauge
    cpu_gate_wait: Histogram


_creating = threading.Lock()


def metrics() -> Metrics:
    """The process's metrics, created once on first use (create_app calls it before threads)."""
    with _creating:
        return _create_metrics()


@cache
def _create_metrics() -> Metrics:
    from prometheus_client import (  # noqa: PLC0415 - see module docstring
        Counter,
        Gauge,
        Histogram,
    )

    def state(name: str, documentation: str) -> Gauge:
        # Every worker reads the same database and spool: the latest reading is the state.
        return Gauge(name, documentation, multiprocess_mode="mostrecent")

    return Metrics(
        requests=Counter(
            "cds_http_requests_total",
            "HTTP requests answered, by endpoint, CDS service and status code",
            ["endpoint", "service", "status"],
        ),
        request_latency=Histogram(
            "cds_http_request_duration_seconds",
            "Time to answer an HTTP request, by endpoint and CDS service",
            ["endpoint", "service"],
            buckets=LATENCY_BUCKETS,
        ),
        cards=Counter(
            "cds_cards_total",
            "Cards issued, by service, rule, indicator and mode (silent cards are not returned)",
            ["service", "rule", "indicator", "mode"],
        ),
        fhir_fetch_latency=Histogram(
            "cds_fhir_fetch_duration_seconds",
            "Time of one fallback FHIR fetch (all queries of a hook call, in parallel)",
            buckets=LATENCY_BUCKETS,
        ),
        fhir_fetch_failures=Counter(
            "cds_fhir_fetch_failures_total",
            "FHIR queries that could not be answered, by reason",
            ["reason"],
        ),
        feedback=Counter(
            "cds_feedback_items_total",
            "Feedback items received, by service, outcome and what was done with them",
            ["service", "outcome", "result"],
        ),
        card_log_entries=Counter(
            "cds_card_log_entries_total",
            "Card-log entries (one per hook call with cards) by result: logged, spooled "
            "(database unavailable), replayed (from the spool into the database)",
            ["result"],
        ),
        card_log_dropped=Counter(
            "cds_card_log_dropped_total",
            "Card-log entries lost, by reason (full, expired, spool-error, duplicate-uuid): cards "
            "answered but never recorded",
            ["reason"],
        ),
        database_up=state("cds_database_up", "1 when the card-log database answered, else 0"),
        spool_depth=state("cds_card_log_spool_depth", "Card-log entries waiting in the spool"),
        spool_oldest_age=state(
            "cds_card_log_spool_oldest_age_seconds", "Age of the oldest spooled entry (0: empty)"
        ),
        spool_dropped=state(
            "cds_card_log_spool_dropped", "Entries the spool dropped since it was created"
        ),
        cpu_gate_wait=Histogram(
            "cds_cpu_gate_wait_seconds",
            "Time a hook call waited for its worker's CPU gate: when it starts and after each "
            "wait on a FHIR server, a JWKS endpoint or the card-log database (CDS_CPU_GATE)",
            buckets=LATENCY_BUCKETS,
        ),
    )


def exposition() -> tuple[bytes, str]:
    """The text format of every metric; merged over all workers in multiprocess mode."""
    from prometheus_client import (  # noqa: PLC0415 - see module docstring
        CONTENT_TYPE_LATEST,
        REGISTRY,
        CollectorRegistry,
        generate_latest,
        multiprocess,
    )

    metrics()  # the families exist (at zero) before the first request that uses them
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def prepare_multiprocess_dir(default: Path) -> Path:
    """Called once in the gunicorn master before workers start: keep ``PROMETHEUS_MULTIPROC_DIR``
    if set, else use ``default``, and empty it, so counts of a previous run never leak into
    this one."""
    directory = Path(os.environ.setdefault(MULTIPROC_ENV, str(default)))
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    return directory


def worker_exited(pid: int) -> None:
    """Drop a dead worker's live-gauge files (counters and histograms keep their totals)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess  # noqa: PLC0415 - see module docstring

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
