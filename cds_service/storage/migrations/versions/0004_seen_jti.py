"""Replay cache of client JWT ids, shared by every replica (CDS_REPLAY_CACHE=database).

Revision ID: 0004_seen_jti
Revises: 0003_suggestion_log
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_seen_jti"
down_revision = "0003_suggestion_log"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "seen_jti",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_seen_jti_expires_at", "seen_jti", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_seen_jti_expires_at", table_name="seen_jti")
    op.drop_table("seen_jti")
