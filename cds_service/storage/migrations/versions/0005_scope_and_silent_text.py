"""Cards and feedback carry the client (JWT iss) and tenant; one outcome per card and client
is a database constraint; the opt-in rendered text of silent cards.

Rows written before this revision get the empty client and tenant: no verified client
(``cds_service.storage.scope.NO_CLIENT``), which no verified client ever matches.

Before the unique constraint can exist, a card with several feedback rows (possible before the
one-outcome rule, or in a race the rule did not close) keeps its first row (lowest id), which
is the one the service has counted since; the later rows are deleted.

Revision ID: 0005_scope_and_silent_text
Revises: 0004_seen_jti
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_scope_and_silent_text"
down_revision = "0004_seen_jti"
branch_labels = None
depends_on = None

SCOPE_COLUMNS = ("client", "tenant")


def upgrade() -> None:
    for table in ("card_log", "feedback"):
        with op.batch_alter_table(table) as batch:
            for name in SCOPE_COLUMNS:
                batch.add_column(sa.Column(name, sa.String(256), nullable=False, server_default=""))
    op.create_index("ix_card_log_client_tenant", "card_log", ["client", "tenant"])
    op.execute(
        "DELETE FROM feedback WHERE id NOT IN "
        "(SELECT min(id) FROM feedback GROUP BY card_uuid, client, tenant)"
    )
    with op.batch_alter_table("feedback") as batch:
        batch.create_unique_constraint("uq_feedback_one_outcome", ["card_uuid", "client", "tenant"])
    op.create_table(
        "silent_card_text",
        sa.Column("card_uuid", sa.String(64), sa.ForeignKey("card_log.uuid"), primary_key=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_silent_card_text_expires_at", "silent_card_text", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_silent_card_text_expires_at", table_name="silent_card_text")
    op.drop_table("silent_card_text")
    with op.batch_alter_table("feedback") as batch:
        batch.drop_constraint("uq_feedback_one_outcome", type_="unique")
        for name in SCOPE_COLUMNS:
            batch.drop_column(name)
    op.drop_index("ix_card_log_client_tenant", table_name="card_log")
    with op.batch_alter_table("card_log") as batch:
        for name in SCOPE_COLUMNS:
            batch.drop_column(name)
