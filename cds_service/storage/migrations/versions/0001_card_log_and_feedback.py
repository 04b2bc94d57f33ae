"""Card log and feedback, as created by create_all before migrations existed (baseline).

Revision ID: 0001_card_log_and_feedback
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_card_log_and_feedback"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "card_log",
        sa.Column("uuid", sa.String(64), primary_key=True),
        sa.Column("service_id", sa.String(128), nullable=False),
        sa.Column("rule_id", sa.String(128), nullable=False),
        sa.Column("rule_outcome", sa.String(128), nullable=False),
        sa.Column("indicator", sa.String(16), nullable=False),
        sa.Column("hook_instance", sa.String(256), nullable=False),
        sa.Column("patient_hash", sa.String(64), nullable=False),
        sa.Column("suggestion_uuids", sa.Text(), nullable=False),
        sa.Column("issued_at", sa.DateTime(), nullable=False),
    )
    for column in ("service_id", "rule_id", "hook_instance", "patient_hash", "issued_at"):
        op.create_index(f"ix_card_log_{column}", "card_log", [column])
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("card_uuid", sa.String(64), sa.ForeignKey("card_log.uuid"), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("outcome_timestamp", sa.DateTime(), nullable=False),
        sa.Column("accepted_suggestions", sa.Text(), nullable=False),
        sa.Column("reason_system", sa.String(256), nullable=True),
        sa.Column("reason_code", sa.String(128), nullable=True),
        sa.Column("reason_display", sa.String(512), nullable=True),
        sa.Column("user_comment", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("card_uuid", "outcome", "outcome_timestamp", name="uq_feedback_once"),
    )
    op.create_index("ix_feedback_card_uuid", "feedback", ["card_uuid"])


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_table("card_log")
