"""``aih-cds silent review``: the cards of rules running in ``mode: silent``, for a period."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, date, datetime, timedelta
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
        help="silent cards per rule and outcome, and each card's time, client and tenant, "
        "hookInstance, keyed patient hash and rendered text (when CDS_SILENT_CARD_TEXT stores it)",
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
    review.add_argument(
        "--now",
        type=_instant,
        help="review as of this instant, ISO 8601 with zone (default: now): text past its "
        "retention then is not shown",
    )
    review.add_argument("--json", action="store_true")
    review.set_defaults(handler=review_command)


def review_command(args: argparse.Namespace) -> int:
    settings = Settings.load({"database_url": args.database_url} if args.database_url else {})
    now = args.now or datetime.now(UTC)
    until = args.until or now.astimezone(UTC).date()
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
    text_storage = {
        "on": settings.silent_card_text,
        "days": settings.silent_card_text_days if settings.silent_card_text else None,
    }
    review = {"database": shown, "text_storage": text_storage} | silent_cards(
        store, period, args.rule, patient_hash, max(1, args.limit), now=now
    )
    print(json.dumps(review, indent=2) if args.json else format_review(review))
    return 0


def _instant(raw: str) -> datetime:
    moment = datetime.fromisoformat(raw)
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{raw!r} has no time zone (add Z or +01:00)")
    return moment


def format_review(review: dict[str, Any]) -> str:
    rule = f", rule {review['rule']}" if review["rule"] else ""
    lines = [
        f"database: {review['database']}",
        _text_storage_line(review["text_storage"]),
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
        f"last {review['shown']} card(s): find the encounter in the EHR of the client and tenant "
        "shown, by hookInstance and time in its CDS Hooks audit log",
        f"{'issued (UTC)':<26} {'rule':<28} {'outcome':<32} {'hookInstance':<38} patient hash",
    ]
    for card in review["cards"]:
        lines += _card_lines(card, text_storage_on=review["text_storage"]["on"])
    return "\n".join(lines)


def _text_storage_line(storage: dict[str, Any]) -> str:
    if storage["on"]:
        return f"rendered text: stored, kept {storage['days']} days (CDS_SILENT_CARD_TEXT=on)"
    return (
        "rendered text: NOT STORED (CDS_SILENT_CARD_TEXT=off): review each card against the "
        "chart; texts stored while it was on are shown until their retention ends"
    )


def _card_lines(card: dict[str, Any], *, text_storage_on: bool) -> list[str]:
    client = f"{card['client'] or '(no verified client)'}, tenant {card['tenant'] or '(none)'}"
    lines = [
        f"{card['issued_at']:<26} {card['rule']:<28} {card['outcome']:<32} "
        f"{card['hook_instance']:<38} {card['patient_hash'][:12]}",
        f"    client: {client}",
    ]
    if card["text"] is not None:
        lines += [f"    | {line}".rstrip() for line in card["text"].splitlines()]
    elif text_storage_on:
        lines.append("    (no text: issued while text storage was off, or past its retention)")
    return lines
