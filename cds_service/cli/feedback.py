"""``aih-cds feedback report``: acceptance and overrides per rule, from the service's database."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from cds_service.common.settings import Settings
from cds_service.informatics.analytics import ReportScope, feedback_report
from cds_service.informatics.override_plot import FORMATS, override_rate_plot
from cds_service.storage.store import Store

TABLES = ("card_log", "feedback", "suggestion_log")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    feedback = commands.add_parser("feedback", help="clinician feedback on cards")
    feedback_commands = feedback.add_subparsers(dest="feedback_command", required=True)
    report = feedback_commands.add_parser(
        "report", help="cards issued, accepted, overridden, reasons and weekly trends per rule"
    )
    report.add_argument("--since", type=date.fromisoformat, help="cards issued on or after DATE")
    report.add_argument("--database-url", help="default: CDS_DATABASE_URL")
    report.add_argument(
        "--client",
        help="only cards issued to this client (its JWT iss; '' for no verified client, as in "
        "development mode); default: every client",
    )
    report.add_argument(
        "--tenant", help="only cards issued to this tenant ('' for none); default: every tenant"
    )
    report.add_argument("--json", action="store_true", help="print the report as JSON")
    report.add_argument(
        "--plot", type=Path, help="write override rate per rule by week (.png or .svg)"
    )
    report.set_defaults(handler=report_command)


class DatabaseUnusable(ValueError):
    """The database named cannot be read as a card log; the message says why and what to do."""


def report_command(args: argparse.Namespace) -> int:
    plot_format = args.plot.suffix.lower().lstrip(".") if args.plot else None
    if plot_format is not None and plot_format not in FORMATS:
        print("--plot writes PNG or SVG: give a file name ending in .png or .svg", file=sys.stderr)
        return 2
    overrides = {"database_url": args.database_url} if args.database_url else {}
    url = Settings.load(overrides).database_url
    try:
        store, shown = open_existing(url)
        scope = ReportScope(args.client, args.tenant)
        report = feedback_report(store, args.since, database=shown, scope=scope)
    except DatabaseUnusable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.plot and plot_format:
        args.plot.write_bytes(override_rate_plot(report, plot_format))
    print(json.dumps(report, indent=2, ensure_ascii=False) if args.json else format_report(report))
    return 0


def open_existing(url: str, patient_hash_key: bytes = b"") -> tuple[Store, str]:
    """The card log at ``url``, read as it is: never created, never migrated.

    Returns the store and the URL as shown to the user (password hidden, file made absolute)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseUnusable(f"not a database URL: {url!r}") from exc
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")
        if not parsed.database or parsed.database == ":memory:":
            raise DatabaseUnusable(f"{shown} is an in-memory database: it holds no cards")
        if not path.is_file():
            raise DatabaseUnusable(
                f"no database file at {path.resolve()} (from {shown}); give the service's "
                "database with --database-url or CDS_DATABASE_URL"
            )
        shown = f"sqlite:///{path.resolve()}"
    store = Store(url, patient_hash_key)  # reads only
    try:
        missing = [t for t in TABLES if not inspect(store.engine).has_table(t)]
    except SQLAlchemyError as exc:
        raise DatabaseUnusable(f"cannot read {shown}: {exc.__class__.__name__}: {exc}") from exc
    if missing:
        raise DatabaseUnusable(
            f"{shown} has no {', '.join(missing)} table(s): not this service's card log, or "
            "not migrated (`aih-cds db upgrade`)"
        )
    return store, shown


def format_report(report: dict[str, Any]) -> str:
    since = f" since {report['since']}" if report["since"] else ""
    source = f"database: {report['database']}\n" if report.get("database") else ""
    lines = [f"{source}{_scope_line(report['scope'])}Feedback on cards{since}"]
    if not report["rules"]:
        return "\n".join(lines) + ": no cards issued."
    for mode in ("active", "silent"):
        rows = [row for row in report["rules"] if row["mode"] == mode]
        if rows:
            lines += ["", *(_active_rows(rows) if mode == "active" else _silent_rows(rows))]
    lines += [
        "",
        "response = cards with any feedback / issued; override = overridden / answered;",
        "[low-high] = 95 % Wilson interval; '-' = nobody answered.",
    ]
    lines += [
        "",
        f"{'week':<12} {'rule':<28} {'mode':<6} {'issued':>6} {'answered':>8} "
        f"{'overridden':>10} {'override rate':>22}",
    ]
    for week in report["weekly"]:
        lines.append(
            f"{week['week']:<12} {week['rule']:<28} {week['mode']:<6} {week['issued']:>6} "
            f"{week['answered']:>8} {_count(week['overridden']):>10} "
            f"{_with_interval(week['override_rate'], week['override_rate_ci95']):>22}"
        )
    return "\n".join(lines)


def _scope_line(scope: dict[str, str | None]) -> str:
    client = "every client" if scope["client"] is None else f"client {scope['client']!r}"
    tenant = "every tenant" if scope["tenant"] is None else f"tenant {scope['tenant']!r}"
    return f"scope: {client}, {tenant}\n"


def _silent_rows(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["Silent cards (logged, never shown to clinicians: no answers expected)"]
    lines.append(f"{'rule':<28} {'indicator':<9} {'n':>6}")
    lines += [f"{row['rule']:<28} {row['indicator']:<9} {row['issued']:>6}" for row in rows]
    return lines


def _active_rows(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["Active cards (shown to clinicians)"]
    lines.append(
        f"{'rule':<28} {'indicator':<9} {'n':>5} {'response':>20} {'accepted':>8} "
        f"{'overridden':>10} {'override rate':>22}"
    )
    for row in rows:
        lines.append(
            f"{row['rule']:<28} {row['indicator']:<9} {row['issued']:>5} "
            f"{_with_interval(row['response_rate'], row['response_rate_ci95']):>20} "
            f"{row['accepted']:>8} {row['overridden']:>10} "
            f"{_with_interval(row['override_rate'], row['override_rate_ci95']):>22}"
        )
        for reason in row["override_reasons"]:
            lines.append(f"    override reason: {reason['display']} x{reason['count']}")
        for suggestion in row["suggestions"]:
            lines.append(
                f"    suggestion: {suggestion['label']}: accepted {suggestion['accepted']} of "
                f"{suggestion['offered']} ({_percent(suggestion['acceptance_rate'])})"
            )
    return lines


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.0%}"


def _with_interval(rate: float | None, interval: list[float] | None) -> str:
    if rate is None or interval is None:
        return "-"
    return f"{rate:.0%} [{interval[0]:.0%}-{interval[1]:.0%}]"


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)
