"""Log set-up: text for people, JSON lines for log pipelines (CDS_LOG_FORMAT).

Every record carries the request id and the hookInstance of the call it belongs to. Neither is
PHI: the request id is ours or the proxy's, hookInstance is a random UUID from the EHR. Patient
ids, tokens and resources are never logged by this service's code.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from flask import g, has_request_context

# Fields a log call may add with ``extra=``; only these reach a JSON line.
EXTRA_FIELDS = ("method", "route", "status", "duration_ms", "service")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


class RequestContext(logging.Filter):
    """Adds request_id and hook_instance (None outside a request) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        in_request = has_request_context()
        record.request_id = g.get("request_id") if in_request else None
        record.hook_instance = g.get("hook_instance") if in_request else None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            "hook_instance": getattr(record, "hook_instance", None),
        }
        for name in EXTRA_FIELDS:
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class _ServiceHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is now (tests swap it); being its own class marks the
    handler this module installed, so a second app replaces it instead of doubling it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # noqa: BLE001 - logging must never break a request
            self.handleError(record)


def configure_logging(level: str, log_format: str) -> None:
    root = logging.getLogger()
    root.setLevel(level)
    for handler in [h for h in root.handlers if isinstance(h, _ServiceHandler)]:
        root.removeHandler(handler)
    handler = _ServiceHandler()
    handler.addFilter(RequestContext())
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    root.addHandler(handler)
