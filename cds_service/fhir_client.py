"""FHIR REST reads for the fallback path: pooled, parallel, under one time budget, paging.

Never logs or returns the access token. Next links are followed only on the same server, so a
hostile Bundle cannot send our bearer token elsewhere.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter

from cds_service import jsonparse, tracing
from cds_service.bundles import entry_resources, error_outcomes, issue_text, next_link
from cds_service.metrics import metrics

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({502, 503, 504})
FHIR_JSON = "application/fhir+json, application/json;q=0.9"


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


class FhirFetcher:
    """Runs several FHIR queries at once against one server; one instance per application."""

    def __init__(
        self, limits: FetchLimits, session: requests.Session | None = None, workers: int = 16
    ) -> None:
        self.limits = limits
        self.session = session or _pooled_session(workers)
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
            results = self._fetch_all(base_url, access_token, queries, continuations)
            failed = [r.reason for r in results.values() if isinstance(r, FetchError)]
            tracing.set_attributes(
                current, {"cds.fhir.queries": len(results), "cds.fhir.failures": len(failed)}
            )
        return results

    def _fetch_all(
        self,
        base_url: str,
        access_token: str | None,
        queries: Mapping[str, str],
        continuations: Mapping[str, dict[str, Any]] | None,
    ) -> dict[str, FetchResult | FetchError]:
        started = time.monotonic()
        deadline = started + self.limits.budget_s
        base = base_url.rstrip("/") + "/"
        futures: dict[str, Future[FetchResult]] = {
            key: self._pool.submit(
                self._search, base, access_token, base + query.lstrip("/"), deadline, None
            )
            for key, query in queries.items()
        }
        for key, bundle in (continuations or {}).items():
            futures[key] = self._pool.submit(
                self._search, base, access_token, None, deadline, bundle
            )
        wait(
            futures.values(),
            timeout=max(0.0, deadline - time.monotonic()),
            return_when=FIRST_EXCEPTION,
        )
        wait(futures.values(), timeout=max(0.0, deadline - time.monotonic()))
        results: dict[str, FetchResult | FetchError] = {}
        for key, future in futures.items():
            if not future.done():
                future.cancel()
                results[key] = FetchError(
                    f"no answer within the {self.limits.budget_s:g} s budget", "timeout"
                )
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
        deadline: float,
        first_page: dict[str, Any] | None,
    ) -> FetchResult:
        result = FetchResult()
        page = (
            first_page if first_page is not None else self._get_json(url or base, token, deadline)
        )
        seen: set[str] = set()
        pages = 1
        while True:
            if page.get("resourceType") == "OperationOutcome":
                raise FetchError(
                    f"the server answered with an OperationOutcome: {issue_text(page)}",
                    "operation-outcome",
                )
            if page.get("resourceType") != "Bundle":
                result.resources.append(page)
                return result
            result.resources.extend(_bundle_resources(page, result))
            next_url = next_link(page)
            if next_url is None:
                return result
            next_url = urljoin(base, next_url)
            if not _same_server(base, next_url):
                result.notes.append(
                    "a next-page link pointed to another server and was not followed"
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

    def _get_json(self, url: str, token: str | None, deadline: float) -> dict[str, Any]:
        headers = {"Accept": FHIR_JSON}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        for attempt in (1, 2):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FetchError("time budget exhausted", "timeout")
            try:
                response = self.session.get(
                    url, headers=headers, timeout=(min(remaining, 1.0), remaining), stream=True
                )
            except requests.Timeout as exc:
                raise FetchError("the FHIR server did not answer in time", "timeout") from exc
            except requests.ConnectionError as exc:
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
                if response.status_code >= 400:
                    raise FetchError(
                        f"the FHIR server answered HTTP {response.status_code}", "http-status"
                    )
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
            chunks.append(chunk)
        return b"".join(chunks)


def _observe(results: Mapping[str, FetchResult | FetchError], elapsed_s: float) -> None:
    measured = metrics()
    measured.fhir_fetch_latency.observe(elapsed_s)
    for result in results.values():
        if isinstance(result, FetchError):
            measured.fhir_fetch_failures.labels(result.reason).inc()


def _pooled_session(workers: int) -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=8, pool_maxsize=workers, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.trust_env = False  # no proxies from the environment in front of PHI traffic
    return session


def _bundle_resources(bundle: Mapping[str, Any], result: FetchResult) -> list[dict[str, Any]]:
    for outcome in error_outcomes(bundle):
        result.notes.append(
            f"the server reported a problem with this search: {issue_text(outcome)}"
        )
    return entry_resources(bundle)


def _same_server(base: str, url: str) -> bool:
    a, b = urlsplit(base), urlsplit(url)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc) and b.path.startswith(a.path.rstrip("/"))
