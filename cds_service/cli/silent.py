"""``aih-cds silent review``: the cards of rules running in ``mode: silent``, for a period."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, timedelta
from typing import Any

from cds_service.cli.feedback import DatabaseUnusable, open_existing
from cds_service.common.settings import Settings
from cds_service.informatics.silent_review import Period, silent_cards

DEFAULT_DAYS = 28


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    silent = commands.add_parser("silent", help="review rules running in mode: silent")
    silent_commands = silent.add_subparsers(dest="silent_command", required=True)
    review = silent_commands.add_parser(
        "review",
        help="silent cards per rule and outcome, and each card's time, hookInstance and "
        "keyed patient hash",
    )
    review.add_argument(
        "--since",
        type=date.fromisoformat,
        help=f"first day, UTC (default: {DEFAULT_DAYS} days ago)",
    )
    review.add_argument("--until", type=date.fromisoformat, help="last day, UTC (default: today)")
    review.add_argument("--rule", help="one rule id")
    review.add_argument(
        "--patient",
        help="only this patient's cards (hashed with CDS_PATIENT_HASH_KEY, which must be set)",
    )
    review.add_argument("--limit", type=int, default=200, help="cards listed (default 200)")
    review.add_argument("--database-url", help="default: CDS_DATABASE_URL")
    review.add_argument("--json", action="store_true")
    review.set_defaults(handler=review_command)


def review_command(args: argparse.Namespace) -> int:
    settings = Settings.load({"database_url": args.database_url} if args.database_url else {})
    until = args.until or date.today()  # noqa: DTZ011 - a calendar day is all that is asked
    period = Period(args.since or until - timedelta(days=DEFAULT_DAYS), until)
    if period.since > period.until:
        print(f"error: --since {period.since} is after --until {period.until}", file=sys.stderr)
        return 2
    if args.patient and not settings.patient_hash_key:
        print(
            "error: --patient needs CDS_PATIENT_HASH_KEY (the service's key): without it "
            "the hashes in the card log cannot be matched",
            file=sys.stderr,
        )
        return 2
    try:
        store, shown = open_existing(
            settings.database_url, settings.patient_hash_key.encode("utf-8")
        )
    except DatabaseUnusable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    patient_hash = store.patient_hash(args.patient) if args.patient else None
    review = {"database": shown} | silent_cards(
        store, period, args.rule, patient_hash, max(1, args.limit)
    )
    print(json.dumps(review, indent=2) if args.json else format_review(review))
    return 0


def format_review(review: dict[str, Any]) -> str:
    rule = f", rule {review['rule']}" if review["rule"] else ""
    lines = [
        f"database: {review['database']}",
        f"Silent cards {review['since']} to {review['until']} (UTC){rule}: {review['total']}",
    ]
    if not review["total"]:
        return "\n".join(lines)
    lines += ["", f"{'rule':<28} {'outcome':<32} {'indicator':<9} {'n':>5}"]
    lines += [
        f"{r['rule']:<28} {r['outcome']:<32} {r['indicator']:<9} {r['count']:>5}"
        for r in review["by_rule"]
    ]
    lines += [
        "",
        f"last {review['shown']} card(s): find the encounter by hookInstance and time in the "
        "EHR's CDS Hooks audit log",
        f"{'issued (UTC)':<26} {'rule':<28} {'outcome':<32} {'hookInstance':<38} patient hash",
    ]
    lines += [
        f"{c['issued_at']:<26} {c['rule']:<28} {c['outcome']:<32} {c['hook_instance']:<38} "
        f"{c['patient_hash'][:12]}"
        for c in review["cards"]
    ]
    return "\n".join(lines)
