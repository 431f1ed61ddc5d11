"""The logging headers' labels on the ledger row (`usage.session_id`, `usage.log_metadata`) and the
prompts and answers a request asked to keep when the operator allows it (`generation_content`).

Revision ID: 0006_logging_and_content
Revises: 0005_responses
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_logging_and_content"
down_revision = "0005_responses"


def upgrade() -> None:
    op.add_column("usage", sa.Column("session_id", sa.String(128), nullable=True))
    op.add_column("usage", sa.Column("log_metadata", sa.Text, nullable=True))
    op.create_table(
        "generation_content",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("key_id", sa.String(40), nullable=True),
        sa.Column("account_id", sa.String(40), nullable=True),
        sa.Column("request", sa.Text, nullable=True),
        sa.Column("response", sa.Text, nullable=True),
        sa.Column("request_truncated", sa.Boolean, nullable=False),
        sa.Column("response_truncated", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_generation_content_created", "generation_content", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_generation_content_created", table_name="generation_content")
    op.drop_table("generation_content")
    with op.batch_alter_table("usage") as batch:  # SQLite rebuilds the table
        batch.drop_column("log_metadata")
        batch.drop_column("session_id")
