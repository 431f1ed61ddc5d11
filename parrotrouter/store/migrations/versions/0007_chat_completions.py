"""Stored chat completions (`chat_completions`): `store: true` answers, for GET /v1/chat/completions.

Revision ID: 0007_chat_completions
Revises: 0006_logging_and_content
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_chat_completions"
down_revision = "0006_logging_and_content"


def upgrade() -> None:
    op.create_table(
        "chat_completions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("metadata", sa.Text, nullable=False),
        sa.Column("completion", sa.Text, nullable=False),
        sa.Column("messages", sa.Text, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("stored_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_chat_completions_owner", "chat_completions", ["owner", "stored_at"])
    op.create_index("ix_chat_completions_created", "chat_completions", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_chat_completions_created", table_name="chat_completions")
    op.drop_index("ix_chat_completions_owner", table_name="chat_completions")
    op.drop_table("chat_completions")
