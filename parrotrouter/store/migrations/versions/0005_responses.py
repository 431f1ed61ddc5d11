"""The Responses API's stored responses (`responses`): conversation state for previous_response_id.

Revision ID: 0005_responses
Revises: 0004_usage_request_id
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_responses"
down_revision = "0004_usage_request_id"


def upgrade() -> None:
    op.create_table(
        "responses",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(40), nullable=True),
        sa.Column("previous_response_id", sa.String(64), nullable=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("input", sa.Text, nullable=False),
        sa.Column("response", sa.Text, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_responses_created", "responses", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_responses_created", table_name="responses")
    op.drop_table("responses")
