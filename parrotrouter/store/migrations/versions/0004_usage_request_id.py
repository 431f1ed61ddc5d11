"""The response's request id in the ledger (`usage.request_id`).

Revision ID: 0004_usage_request_id
Revises: 0003_usage_ended_by_rejects
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_usage_request_id"
down_revision = "0003_usage_ended_by_rejects"


def upgrade() -> None:
    op.add_column("usage", sa.Column("request_id", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("usage") as batch:  # SQLite rebuilds the table
        batch.drop_column("request_id")
