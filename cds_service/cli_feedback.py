"""``aih-cds feedback report``: acceptance and overrides per rule, from the service's database."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

from cds_service.analytics import feedback_report
from cds_service.override_plot import override_rate_svg
from cds_service.settings import Settings
from cds_service.store import Store


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    feedback = commands.add_parser("feedback", help="clinician feedback on cards")
    feedback_commands = feedback.add_subparsers(dest="feedback_command", required=True)
    report = feedback_commands.add_parser(
        "report", help="cards issued, accepted, overridden, reasons and weekly trends per rule"
    )
    report.add_argument("--since", type=date.fromisoformat, help="cards issued on or after DATE")
    report.add_argument("--database-url", help="default: CDS_DATABASE_URL")
    report.add_argument("--json", action="store_true", help="print the report as JSON")
    report.add_argument("--plot", type=Path, help="write override rate per rule by week (.svg)")
    report.set_defaults(handler=report_command)


def report_command(args: argparse.Namespace) -> int:
    if args.plot and args.plot.suffix.lower() != ".svg":
        print("--plot writes SVG: give a file name ending in .svg", file=sys.stderr)
        return 2
    overrides = {"database_url": args.database_url} if args.database_url else {}
    store = Store(Settings.load(overrides).database_url, b"")  # reads only: no hashing
    store.create_schema()  # an empty or older database reads as "no cards yet"
    report = feedback_report(store, args.since)
    if args.plot:
        args.plot.write_text(override_rate_svg(report), encoding="utf-8")
    print(json.dumps(report, indent=2, ensure_ascii=False) if args.json else format_report(report))
    return 0


def format_report(report: dict[str, Any]) -> str:
    since = f" since {report['since']}" if report["since"] else ""
    lines = [f"Feedback on cards{since}"]
    if not report["rules"]:
        return lines[0] + ": no cards issued."
    lines.append("")
    lines.append(
        f"{'rule':<28} {'indicator':<9} {'issued':>6} {'accepted':>8} {'overridden':>10} "
        f"{'no answer':>9} {'override rate':>13}"
    )
    for row in report["rules"]:
        lines.append(
            f"{row['rule']:<28} {row['indicator']:<9} {row['issued']:>6} {row['accepted']:>8} "
            f"{row['overridden']:>10} {row['without_feedback']:>9} "
            f"{_percent(row['override_rate']):>13}"
        )
        for reason in row["override_reasons"]:
            lines.append(f"    override reason: {reason['display']} x{reason['count']}")
        for suggestion in row["suggestions"]:
            lines.append(
                f"    suggestion: {suggestion['label']}: accepted {suggestion['accepted']} of "
                f"{suggestion['offered']} ({_percent(suggestion['acceptance_rate'])})"
            )
    lines += ["", f"{'week':<12} {'rule':<28} {'issued':>6} {'overridden':>10} {'rate':>6}"]
    for week in report["weekly"]:
        lines.append(
            f"{week['week']:<12} {week['rule']:<28} {week['issued']:>6} "
            f"{week['overridden']:>10} {_percent(week['override_rate']):>6}"
        )
    return "\n".join(lines)


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.0%}"
