"""Migrations on SQLite: from empty, adopting a database made before migrations, downgrade,
no drift between models and migrations, the start-up check when migrations run separately."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from flask import Flask
from sqlalchemy import Engine, inspect, text

from cds_service.storage.schema import (
    BASELINE,
    SchemaOutOfDate,
    alembic_config,
    current_revision,
    head_revision,
    require_head,
    upgrade,
)
from cds_service.storage.store import Base, PoolSettings, database_engine, database_url


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return database_engine(f"sqlite:///{tmp_path / 'db.sqlite'}", PoolSettings())


def test_upgrade_from_empty_reaches_head_without_drift(engine: Engine) -> None:
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


def test_database_made_before_migrations_is_adopted_and_upgraded(engine: Engine) -> None:
    upgrade(engine, BASELINE)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO card_log VALUES ('c1', 's', 'r', 'o', 'info', 'h', 'p', '[]', "
                "'2026-06-01 12:00:00')"
            )
        )
        connection.execute(text("DROP TABLE alembic_version"))  # as create_all left it
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        row = connection.execute(text("SELECT uuid, mode FROM card_log")).one()
    assert tuple(row) == ("c1", "active")


def test_downgrade_to_nothing_and_back(engine: Engine) -> None:
    upgrade(engine)
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(engine)
    assert current_revision(engine) == head_revision()


def test_require_head_names_the_command_to_run(engine: Engine) -> None:
    with pytest.raises(SchemaOutOfDate, match=r"nothing.*aih-cds db upgrade"):
        require_head(engine)
    upgrade(engine, BASELINE)
    with pytest.raises(SchemaOutOfDate, match=BASELINE):
        require_head(engine)
    upgrade(engine)
    require_head(engine)


def test_app_without_migrate_refuses_an_unmigrated_database(
    app_factory: Callable[..., Flask],
) -> None:
    with pytest.raises(SchemaOutOfDate):
        app_factory(database_migrate=False)
    app_factory()  # migrates
    assert app_factory(database_migrate=False).test_client().get("/readyz").status_code == 200


@pytest.mark.parametrize(
    ("raw", "driver"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg"),
        ("postgres://u@h/db", "postgresql+psycopg"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg"),
        ("sqlite:///x.sqlite", "sqlite"),
    ],
)
def test_postgres_urls_use_psycopg_3(raw: str, driver: str) -> None:
    assert database_url(raw).drivername == driver


def test_pool_settings_reach_a_server_engine() -> None:
    engine = database_engine("postgresql://u@127.0.0.1:1/db", PoolSettings(size=7, max_overflow=3))
    assert (engine.pool.size(), engine.pool._max_overflow) == (7, 3)  # type: ignore[attr-defined]
