"""Suggestion log: the label of every suggestion issued, for acceptance per suggestion.

Revision ID: 0003_suggestion_log
Revises: 0002_card_log_mode_and_retention
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_suggestion_log"
down_revision = "0002_card_log_mode_and_retention"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "suggestion_log",
        sa.Column("uuid", sa.String(64), primary_key=True),
        sa.Column("card_uuid", sa.String(64), sa.ForeignKey("card_log.uuid"), nullable=False),
        sa.Column("label", sa.String(512), nullable=False),
    )
    op.create_index("ix_suggestion_log_card_uuid", "suggestion_log", ["card_uuid"])


def downgrade() -> None:
    op.drop_index("ix_suggestion_log_card_uuid", table_name="suggestion_log")
    op.drop_table("suggestion_log")
