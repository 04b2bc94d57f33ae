"""Database schema versions: Alembic migrations in ``cds_service/storage/migrations/versions/``.

``upgrade`` is what ``aih-cds db upgrade`` runs and what start-up runs when
``CDS_DATABASE_MIGRATE`` is on. On PostgreSQL it holds an advisory lock for the whole upgrade,
so replicas starting together migrate one after the other instead of racing.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
BASELINE = "0001_card_log_and_feedback"
# Any constant works; it only has to be the same for every replica of this service.
ADVISORY_LOCK_KEY = 0x41494843


class SchemaOutOfDate(RuntimeError):
    """The database is not at the migration this code needs."""


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise SchemaOutOfDate("no migrations found")
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, target: str = "head") -> None:
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Migrations and the wait for another replica's migration may take longer than
            # the per-query limit that protects hook calls (CDS_DATABASE_QUERY_TIMEOUT_S).
            connection.execute(text("SET LOCAL statement_timeout = 0"))
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
            )
        _adopt_unversioned(connection)
        command.upgrade(alembic_config(connection), target)


def require_head(engine: Engine) -> None:
    """Start-up check when migrations are run separately (CDS_DATABASE_MIGRATE=off)."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise SchemaOutOfDate(
            f"database schema is at {current or 'nothing'}, this version needs {head}: "
            "run `aih-cds db upgrade`"
        )


def _adopt_unversioned(connection: Connection) -> None:
    """Databases made by create_all before migrations existed hold the baseline tables but
    no version: mark them as the baseline so the later migrations apply on top."""
    tables = set(inspect(connection).get_table_names())
    if "card_log" in tables and "alembic_version" not in tables:
        command.stamp(alembic_config(connection), BASELINE)
