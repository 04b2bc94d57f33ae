"""FHIR REST reads for the fallback path: pooled, parallel, under one time budget, paging.

Never logs or returns the access token. Next links are followed only on the same server, so a
hostile Bundle cannot send our bearer token elsewhere. The time budget is one deadline per hook
call, enforced on the sockets (``fhir_transport``); each server is admitted per call by a
concurrency cap and a circuit breaker (``upstream_guard``).

With the worker's CPU gate (``ops/cpu_gate``): the calling thread lets go of it while it waits
for its queries (and for a slot at a busy server); each query's thread takes it for its own
Python work (parsing the answer) and lets go of it while it waits on the network. So the
queries' parsing never runs beside another call's computation, and nothing waits on a FHIR
server while holding the gate.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import requests

from cds_service.common import jsonparse
from cds_service.fhir.bundles import entry_resources, error_outcomes, issue_summary, next_link
from cds_service.fhir.server_policy import (
    AllowedServer,
    FhirServerPolicy,
    PolicyRefused,
    unsafe_path,
)
from cds_service.fhir.transport import (
    AddressCheck,
    CallSockets,
    bound_to,
    current_call,
    guarded_session,
)
from cds_service.fhir.upstream_guard import HostGuard, Refused
from cds_service.ops import cpu_gate, tracing
from cds_service.ops.metrics import metrics

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({502, 503, 504})
FHIR_JSON = "application/fhir+json, application/json;q=0.9"
# Failures that say the server (or the way to it) is unwell: they feed the circuit breaker.
NETWORK_FAILURES = frozenset({"timeout", "connect"})
# a read timed out this close to the deadline is the budget's (timers fire a little late or early)
_DEADLINE_SLACK_S = 0.05
_T = TypeVar("_T")


@dataclass
class _HookCall:
    deadline: float | None = None
    servers: tuple[AllowedServer, ...] | None = None  # the authenticated caller's fhirServers


_hook_call: ContextVar[_HookCall | None] = ContextVar("aih_cds_hook_call", default=None)


def begin_hook_call() -> Token[_HookCall | None]:
    """From here every fetch shares one deadline, set by the first (one budget per hook call)."""
    return _hook_call.set(_HookCall())


def allow_servers(servers: tuple[AllowedServer, ...]) -> None:
    """The FHIR servers the authenticated caller of this hook call may have us contact."""
    current = _hook_call.get()
    if current is not None:
        current.servers = servers


def end_hook_call(token: Token[_HookCall | None]) -> None:
    _hook_call.reset(token)


@contextmanager
def hook_call() -> Iterator[None]:
    token = begin_hook_call()
    try:
        yield
    finally:
        end_hook_call(token)


class FetchError(Exception):
    """A query could not be answered; the message is safe to show (no token, no patient data).

    ``reason`` is a short fixed word for the failure metric (timeout, connect, refused, ...).
    """

    def __init__(self, message: str, reason: str = "error") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class FetchResult:
    resources: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # gaps worth stating on a card


@dataclass(frozen=True)
class FetchLimits:
    budget_s: float = 2.0
    max_pages: int = 10
    max_response_bytes: int = 20_000_000
    max_calls_per_host: int = 2  # hook calls in progress per FHIR server, per process
    max_entries_per_call: int = 20_000  # resources, all queries and pages of one hook call
    max_bytes_per_call: int = 40_000_000


class FhirFetcher:
    """Runs several FHIR queries at once against one server; one instance per application."""

    def __init__(
        self,
        limits: FetchLimits,
        session: requests.Session | None = None,
        workers: int = 16,
        *,
        policy: FhirServerPolicy | None = None,
        guard: HostGuard | None = None,
    ) -> None:
        self.limits = limits
        self.policy = policy
        self.session = session or guarded_session(workers)
        self.guard = guard or HostGuard(limits.max_calls_per_host)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fhir-fetch")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.session.close()

    def fetch_many(
        self,
        base_url: str,
        access_token: str | None,
        queries: Mapping[str, str],
        continuations: Mapping[str, dict[str, Any]] | None = None,
    ) -> dict[str, FetchResult | FetchError]:
        """Answer each query (relative URL) or say why not, within the time budget.

        ``continuations`` are Bundles already in hand (e.g. paginated prefetch) whose next
        links should be followed.
        """
        with tracing.span("fhir.fetch") as current:
            results = self._admitted(base_url, access_token, queries, continuations)
            failed = [r.reason for r in results.values() if isinstance(r, FetchError)]
            tracing.set_attributes(
                current, {"cds.fhir.queries": len(results), "cds.fhir.failures": len(failed)}
            )
        return results

    def _admitted(
        self,
        base_url: str,
        access_token: str | None,
        queries: Mapping[str, str],
        continuations: Mapping[str, dict[str, Any]] | None,
    ) -> dict[str, FetchResult | FetchError]:
        """The fhirServer policy, then the host guard: a server outside the caller's list, or
        saturated or failing, is not contacted."""
        keys = [*queries, *(continuations or {})]
        address_check: AddressCheck | None = None
        if self.policy is not None:
            current = _hook_call.get()
            try:
                entry = self.policy.allowed_entry(base_url, current.servers if current else None)
            except PolicyRefused as refused:
                log.warning("fhirServer not contacted: %s", refused)
                return _refused_all(keys, FetchError(str(refused), "policy"))
            address_check = self.policy.address_check(entry)
        host = _origin(base_url)
        try:
            trial = self._enter(host)
        except Refused as refused:
            log.warning("FHIR server not contacted: %s", refused.reason)
            return _refused_all(keys, FetchError(str(refused), refused.reason))
        results: dict[str, FetchResult | FetchError] = {}
        try:
            results = self._fetch_all(base_url, access_token, queries, continuations, address_check)
        finally:
            failed = not results or any(
                isinstance(r, FetchError) and r.reason in NETWORK_FAILURES for r in results.values()
            )
            self.guard.leave(host, failed=failed, trial=trial)
        return results

    def _enter(self, host: str) -> bool:
        """The host guard's admission. A call that must wait for a slot lets go of the CPU gate
        meanwhile: first a try that never waits (the gate is not given up for nothing), then the
        wait outside the gate (never inside the guard's lock: no lock-order inversion)."""
        deadline = self._deadline(time.monotonic())
        if cpu_gate.current() is not None:
            try:
                return self.guard.enter(host)
            except Refused as refused:
                if refused.reason != "saturated":
                    raise
        with cpu_gate.released():
            return self.guard.enter(host, deadline)

    def _deadline(self, now: float) -> float:
        current = _hook_call.get()
        if current is None:
            return now + self.limits.budget_s
        if current.deadline is None:
            current.deadline = now + self.limits.budget_s
        return current.deadline

    def _fetch_all(
        self,
        base_url: str,
        access_token: str | None,
        queries: Mapping[str, str],
        continuations: Mapping[str, dict[str, Any]] | None,
        address_check: AddressCheck | None = None,
    ) -> dict[str, FetchResult | FetchError]:
        started = time.monotonic()
        deadline = self._deadline(started)
        call = CallSockets(deadline, address_check)
        base = base_url.rstrip("/") + "/"
        gate = cpu_gate.current()  # the queries' threads take it for their own Python work
        futures: dict[str, Future[FetchResult]] = {
            key: self._pool.submit(
                _on_call,
                call,
                gate,
                self._search,
                base,
                access_token,
                base + query.lstrip("/"),
                None,
            )
            for key, query in queries.items()
        }
        for key, bundle in (continuations or {}).items():
            futures[key] = self._pool.submit(
                _on_call, call, gate, self._search, base, access_token, None, bundle
            )
        # Waiting for the queries (which need the gate) and cutting them at the deadline (which
        # must not queue behind other calls' computation) happen outside the gate.
        with cpu_gate.released():
            wait(
                futures.values(),
                timeout=max(0.0, deadline - time.monotonic()),
                return_when=FIRST_EXCEPTION,
            )
            wait(futures.values(), timeout=max(0.0, deadline - time.monotonic()))
            late = {key for key, future in futures.items() if not future.done()}
            cut = call.close()  # abandoned reads end now, and free their threads
        if cut:
            log.info("closed %d FHIR connection(s) still open at the deadline", cut)
        results: dict[str, FetchResult | FetchError] = {}
        for key, future in futures.items():
            if key in late:
                future.cancel()
                results[key] = self._budget_spent()
                continue
            error = future.exception()
            if error is None:
                results[key] = future.result()
            elif isinstance(error, FetchError):
                results[key] = error
            else:
                log.error("unexpected error fetching %s: %s", key, type(error).__name__)
                results[key] = FetchError(
                    f"unexpected error ({type(error).__name__})", "unexpected"
                )
        _observe(results, time.monotonic() - started)
        return results

    # -- one query, all its pages

    def _search(
        self,
        base: str,
        token: str | None,
        url: str | None,
        first_page: dict[str, Any] | None,
        deadline: float,
    ) -> FetchResult:
        result = FetchResult()
        page = (
            first_page if first_page is not None else self._get_json(url or base, token, deadline)
        )
        seen: set[str] = set()
        pages = 1
        counted = 0
        while True:
            if page.get("resourceType") == "OperationOutcome":
                log.warning("FHIR server answered an OperationOutcome: %s", issue_summary(page))
                raise FetchError(
                    "the server answered with an OperationOutcome "
                    f"({issue_summary(page)}; details are not shown)",
                    "operation-outcome",
                )
            if page.get("resourceType") != "Bundle":
                result.resources.append(page)
                return result
            result.resources.extend(_bundle_resources(page, result))
            self._spend(entries=len(result.resources) - counted)
            counted = len(result.resources)
            next_url = next_link(page)
            if next_url is None:
                return result
            next_url = urljoin(base, next_url)
            if not _same_server(base, next_url):
                result.notes.append(
                    "a next-page link led to another server or out of its base path: not followed"
                )
                return result
            if next_url in seen:
                result.notes.append("the server's next-page links loop; later pages were not read")
                return result
            if pages >= self.limits.max_pages:
                result.notes.append(
                    f"more than {self.limits.max_pages} pages of results; the rest were not read"
                )
                return result
            seen.add(next_url)
            pages += 1
            page = self._get_json(next_url, token, deadline)

    def _budget_spent(self) -> FetchError:
        return FetchError(f"no answer within the {self.limits.budget_s:g} s budget", "timeout")

    def _out_of_time(self, deadline: float) -> FetchError:
        """A read times out at the deadline: the budget is spent, whichever of this thread and
        the one cutting the calls at the deadline notices first (one message for one cause).
        Only connecting (at most 1 s) can time out before it."""
        if time.monotonic() >= deadline - _DEADLINE_SLACK_S:
            return self._budget_spent()
        return FetchError("the FHIR server did not answer in time", "timeout")

    def _get_json(self, url: str, token: str | None, deadline: float) -> dict[str, Any]:
        headers = {"Accept": FHIR_JSON}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        for attempt in (1, 2):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._budget_spent()
            try:
                with cpu_gate.released():  # connect, send, wait for the headers
                    response = self.session.get(
                        url,
                        headers=headers,
                        timeout=(min(remaining, 1.0), remaining),
                        stream=True,
                        allow_redirects=False,  # a redirect could lead the token elsewhere
                    )
            except PolicyRefused as exc:  # an address the fhirServer policy refuses
                log.warning("fhirServer not contacted: %s", exc)
                raise FetchError(str(exc), "policy") from exc
            except requests.Timeout as exc:
                raise self._out_of_time(deadline) from exc
            except requests.ConnectionError as exc:
                if deadline <= time.monotonic():  # cut at the deadline
                    raise self._budget_spent() from exc
                if attempt == 1 and deadline - time.monotonic() > 0.2:
                    continue
                raise FetchError("could not connect to the FHIR server", "connect") from exc
            try:
                if (
                    response.status_code in RETRY_STATUSES
                    and attempt == 1
                    and deadline - time.monotonic() > 0.2
                ):
                    continue
                if response.status_code in {401, 403}:
                    raise FetchError(
                        f"the FHIR server refused access (HTTP {response.status_code})", "refused"
                    )
                if 300 <= response.status_code < 400:
                    raise FetchError(
                        f"the FHIR server answered a redirect (HTTP {response.status_code}), "
                        "which is not followed",
                        "redirect",
                    )
                if response.status_code >= 400:
                    raise FetchError(
                        f"the FHIR server answered HTTP {response.status_code}", "http-status"
                    )
                with cpu_gate.released():  # the body, as fast as the server sends it
                    body = self._read_limited(response, deadline)
            finally:
                response.close()
            try:
                data = jsonparse.loads(body)
            except (ValueError, UnicodeDecodeError) as exc:
                raise FetchError("the FHIR server sent malformed JSON", "malformed") from exc
            if not isinstance(data, dict):
                raise FetchError("the FHIR server sent JSON that is not a resource", "malformed")
            return data
        raise FetchError("the FHIR server kept failing", "http-status")

    def _read_limited(self, response: requests.Response, deadline: float) -> bytes:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(chunk_size=65536):
            size += len(chunk)
            if size > self.limits.max_response_bytes:
                raise FetchError(
                    f"response larger than {self.limits.max_response_bytes} bytes", "too-large"
                )
            if time.monotonic() > deadline:
                raise FetchError("the FHIR server did not finish its answer in time", "timeout")
            self._spend(size=len(chunk))
            chunks.append(chunk)
        return b"".join(chunks)

    def _spend(self, entries: int = 0, size: int = 0) -> None:
        """Caps per hook call: all its queries and pages together (not only per response)."""
        call = current_call()
        if call is None:
            return
        total_entries, total_bytes = call.spend(entries, size)
        if total_entries > self.limits.max_entries_per_call:
            raise FetchError(
                f"more than {self.limits.max_entries_per_call} resources in one hook call",
                "too-large",
            )
        if total_bytes > self.limits.max_bytes_per_call:
            raise FetchError(
                f"more than {self.limits.max_bytes_per_call} bytes read in one hook call",
                "too-large",
            )


def _observe(results: Mapping[str, FetchResult | FetchError], elapsed_s: float) -> None:
    measured = metrics()
    measured.fhir_fetch_latency.observe(elapsed_s)
    for result in results.values():
        if isinstance(result, FetchError):
            measured.fhir_fetch_failures.labels(result.reason).inc()


def _refused_all(keys: list[str], error: FetchError) -> dict[str, FetchResult | FetchError]:
    results: dict[str, FetchResult | FetchError] = dict.fromkeys(keys, error)
    _observe(results, 0.0)
    return results


def _on_call(
    call: CallSockets, gate: cpu_gate.CpuGate | None, search: Callable[..., _T], *args: Any
) -> _T:
    """Run one query in a pool thread, its connections registered with the hook call, holding
    the calling worker's CPU gate (if any) except while it waits on the network."""
    with bound_to(call), cpu_gate.holding(gate):
        return search(*args, call.deadline)


def _origin(base_url: str) -> str:
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _bundle_resources(bundle: Mapping[str, Any], result: FetchResult) -> list[dict[str, Any]]:
    for outcome in error_outcomes(bundle):
        result.notes.append(
            f"the server reported a problem with this search ({issue_summary(outcome)})"
        )
    return entry_resources(bundle)


def _same_server(base: str, url: str) -> bool:
    """``url`` is on the server and under the path of ``base``; a path with dot segments
    (``/fhir/../admin``), encoded dots or slashes, or user info never is."""
    a, b = urlsplit(base), urlsplit(url)
    if "@" in b.netloc or unsafe_path(b.path):
        return False
    prefix = a.path.rstrip("/")
    return (a.scheme, a.netloc.lower()) == (b.scheme, b.netloc.lower()) and (
        b.path == prefix or b.path.startswith(prefix + "/")
    )
