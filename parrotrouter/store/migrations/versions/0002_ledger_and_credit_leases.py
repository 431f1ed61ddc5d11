"""Usage ledger, credit leases and per-key daily spend.

Revision ID: 0002_ledger_and_credit_leases
Revises: 0001_accounts_and_keys
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_ledger_and_credit_leases"
down_revision = "0001_accounts_and_keys"


def upgrade() -> None:
    op.create_table(
        "credit_leases",
        sa.Column("bucket", sa.String(120), primary_key=True),
        sa.Column("holder", sa.String(64), primary_key=True),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("renewed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "key_days",
        sa.Column("key_id", sa.String(40), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("spent", sa.BigInteger, nullable=False),
        sa.Column("leased", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "usage",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("endpoint", sa.String(40), nullable=False),
        sa.Column("key_id", sa.String(40), nullable=True),
        sa.Column("account_id", sa.String(40), nullable=True),
        sa.Column("requested_model", sa.String(200), nullable=False),
        sa.Column("served_model", sa.String(200), nullable=True),
        sa.Column("provider", sa.String(100), nullable=True),
        sa.Column("deployment", sa.String(300), nullable=True),
        sa.Column("prompt_tokens", sa.Integer, nullable=False),
        sa.Column("completion_tokens", sa.Integer, nullable=False),
        sa.Column("cached_tokens", sa.Integer, nullable=False),
        sa.Column("reasoning_tokens", sa.Integer, nullable=False),
        sa.Column("cost", sa.BigInteger, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("ttft_ms", sa.Float, nullable=True),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("error_code", sa.String(60), nullable=True),
        sa.Column("streamed", sa.Boolean, nullable=False),
        sa.Column("finish_reason", sa.String(40), nullable=True),
        sa.Column("user", sa.String(256), nullable=True),
        sa.Column("attempts", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_usage_key_created", "usage", ["key_id", "created_at"])
    op.create_index("ix_usage_created", "usage", ["created_at"])
