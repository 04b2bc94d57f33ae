"""Errors that become HTTP answers with a FHIR OperationOutcome body."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import InterfaceError, InternalError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

# Database errors that mean "not now" (server down, connection lost, statement or pool timeout,
# read-only after a failover, SQLite file not writable or locked): answered 503, retry later.
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    OperationalError,
    InterfaceError,
    InternalError,
    PoolTimeout,
)
RETRY_AFTER_S = 5


class ServiceError(Exception):
    """An error answered to the client with ``status`` and an OperationOutcome."""

    status = 400
    issue_code = "invalid"
    retry_after_s: int | None = None  # sent as Retry-After when set (503)

    def __init__(self, diagnostics: str, *, expression: str | None = None) -> None:
        super().__init__(diagnostics)
        self.diagnostics = diagnostics
        self.expression = expression

    def outcome(self) -> dict[str, Any]:
        return operation_outcome(self.diagnostics, code=self.issue_code, expression=self.expression)


class BadRequest(ServiceError):
    status = 400


class NotFound(ServiceError):
    status = 404
    issue_code = "not-found"


class PayloadTooLarge(ServiceError):
    status = 413
    issue_code = "too-costly"


class UnsupportedMediaType(ServiceError):
    status = 415
    issue_code = "not-supported"


class PreconditionFailed(ServiceError):
    """Required data could be neither read from prefetch nor fetched (spec: HTTP 412)."""

    status = 412
    issue_code = "incomplete"


class DatabaseUnavailable(ServiceError):
    """The database cannot take this request now; nothing was half-written (HTTP 503)."""

    status = 503
    issue_code = "transient"
    retry_after_s = RETRY_AFTER_S


def operation_outcome(
    diagnostics: str,
    *,
    code: str = "invalid",
    severity: str = "error",
    expression: str | None = None,
) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}
