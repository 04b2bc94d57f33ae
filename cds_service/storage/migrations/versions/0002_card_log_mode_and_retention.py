"""Card log: the rule's mode (active or silent), and an index for feedback retention.

Revision ID: 0002_card_log_mode_and_retention
Revises: 0001_card_log_and_feedback
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_card_log_mode_and_retention"
down_revision = "0001_card_log_and_feedback"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("card_log") as batch:
        batch.add_column(sa.Column("mode", sa.String(16), nullable=False, server_default="active"))
    op.create_index("ix_feedback_received_at", "feedback", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_feedback_received_at", table_name="feedback")
    with op.batch_alter_table("card_log") as batch:
        batch.drop_column("mode")
