"""Alembic environment: always handed a live connection by ``cds_service.storage.schema``."""

from __future__ import annotations

from alembic import context

from cds_service.storage.store import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `aih-cds db upgrade` (cds_service.storage.schema)")
# render_as_batch: SQLite cannot ALTER most things, so column changes go through table copies.
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
