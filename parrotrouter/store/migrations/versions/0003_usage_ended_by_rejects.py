"""Who ended a stream (`usage.ended_by`) and the ledger's dead letters (`usage_rejects`).

Revision ID: 0003_usage_ended_by_rejects
Revises: 0002_ledger_and_credit_leases
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_usage_ended_by_rejects"
down_revision = "0002_ledger_and_credit_leases"


def upgrade() -> None:
    op.add_column("usage", sa.Column("ended_by", sa.String(16), nullable=True))
    op.create_table(
        "usage_rejects",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("generation_id", sa.String(64), nullable=False),
        sa.Column("record", sa.Text, nullable=False),
        sa.Column("error", sa.String(1000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_usage_rejects_generation_id", "usage_rejects", ["generation_id"])


def downgrade() -> None:
    op.drop_index("ix_usage_rejects_generation_id", table_name="usage_rejects")
    op.drop_table("usage_rejects")
    with op.batch_alter_table("usage") as batch:  # SQLite rebuilds the table
        batch.drop_column("ended_by")
