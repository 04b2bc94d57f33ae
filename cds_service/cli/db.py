"""``aih-cds db``: migrate the database, show its version, purge old rows by retention."""

from __future__ import annotations

import argparse
from typing import Any

from cds_service.common.settings import Settings
from cds_service.storage.schema import current_revision, head_revision, upgrade
from cds_service.storage.store import PoolSettings, Store, database_engine
from cds_service.web.runtime import utc_now


def add_db_commands(commands: Any) -> None:
    db = commands.add_parser("db", help="database: migrations and retention (CDS_DATABASE_URL)")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("upgrade", help="apply every pending migration (safe to repeat)")
    db_commands.add_parser("current", help="show the schema version; exit 1 if behind")
    purge = db_commands.add_parser(
        "purge",
        help="delete card log and feedback rows older than the retention settings, and "
        "silent-card text past its own",
    )
    purge.add_argument("--card-log-days", type=int, help="default: CDS_CARD_LOG_RETENTION_DAYS")
    purge.add_argument("--feedback-days", type=int, help="default: CDS_FEEDBACK_RETENTION_DAYS")


def run_db_command(args: argparse.Namespace) -> int:
    settings = Settings.load()
    if args.db_command == "purge":
        return _purge(args, settings)
    engine = database_engine(settings.database_url, PoolSettings())
    try:
        if args.db_command == "upgrade":
            before = current_revision(engine)
            upgrade(engine)
            print(f"database at {current_revision(engine)} (was {before or 'empty'})")
            return 0
        current, head = current_revision(engine), head_revision()
        print(f"current: {current or 'none'}\nhead:    {head}")
        return 0 if current == head else 1
    finally:
        engine.dispose()


def _purge(args: argparse.Namespace, settings: Settings) -> int:
    card_days = _days(args.card_log_days, settings.card_log_retention_days)
    feedback_days = _days(args.feedback_days, settings.feedback_retention_days)
    # The hash key plays no part in deleting rows.
    store = Store(settings.database_url, b"unused", PoolSettings())
    try:
        report = store.purge(utc_now(), card_log_days=card_days, feedback_days=feedback_days)
    finally:
        store.engine.dispose()
    print(
        f"purged {report.cards} cards (older than {card_days or 'never'} days, with their "
        f"feedback) and {report.feedback} feedback items (older than "
        f"{feedback_days or 'never'} days), and {report.silent_texts} silent-card texts past "
        "their retention (CDS_SILENT_CARD_TEXT_DAYS when stored)"
    )
    return 0


def _days(given: int | None, configured: int) -> int:
    days = configured if given is None else given
    if days < 0:
        raise SystemExit("retention days must be >= 0 (0 keeps rows forever)")
    return days
