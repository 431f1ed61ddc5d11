"""Table definitions. Money is stored as integer nano-dollars (exact in SQLite and PostgreSQL)."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

metadata = sa.MetaData()

NANO = Decimal("0.000000001")


class Money(sa.types.TypeDecorator[Decimal]):
    """USD as a Decimal in Python, integer nano-dollars in the database."""

    impl = sa.BigInteger
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> int | None:
        if value is None:
            return None
        return int(Decimal(value).scaleb(9).to_integral_value(ROUND_HALF_EVEN))

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else from_nanos(value)


def to_nanos(value: Decimal) -> int:
    return int(value.scaleb(9).to_integral_value(ROUND_HALF_EVEN))  # exact, unlike a division


def from_nanos(value: Any) -> Decimal:
    """A nano-dollar integer (or SQL SUM of them) as USD, without trailing zeros and never with a
    positive exponent (100, not `normalize()`'s 1E+2)."""
    if not value:
        return Decimal(0)
    usd = Decimal(int(value)).scaleb(-9).normalize()
    return usd.quantize(_ONE) if usd == usd.to_integral_value() else usd


def usd_text(value: Decimal) -> str:
    """An amount as a plain decimal numeral (100, 0.5, 0.0000001): `str()` would write 1E+2 or
    1E-7. Non-finite values (only a corrupted stored value could be one) have no numeral: "null"."""
    if not value.is_finite():
        return "null"
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


_ONE = Decimal(1)


def utc_now_column(name: str, **kw: Any) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False, **kw)


meta = sa.Table(
    "meta", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)

accounts = sa.Table(
    "accounts", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("balance", Money, nullable=False),
    sa.Column("leased", Money, nullable=False),  # set aside by gateway processes (credit_leases)
    utc_now_column("created_at"),
    utc_now_column("updated_at"),
)

api_keys = sa.Table(
    "api_keys", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False, index=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("permissions", sa.JSON, nullable=False),
    sa.Column("restrictions", sa.JSON, nullable=False),
    sa.Column("metadata", sa.JSON, nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    utc_now_column("created_at"),
    utc_now_column("updated_at"),
)

# Money a gateway process has set aside from a budget, so it can admit requests without a
# database round trip. Rows of processes that stopped renewing are reclaimed.
credit_leases = sa.Table(
    "credit_leases", metadata,
    sa.Column("bucket", sa.String(120), primary_key=True),
    sa.Column("holder", sa.String(64), primary_key=True),
    sa.Column("amount", Money, nullable=False),
    utc_now_column("renewed_at"),
)

# Per-key daily spend, for `max_cost_per_day`.
key_days = sa.Table(
    "key_days", metadata,
    sa.Column("key_id", sa.String(40), primary_key=True),
    sa.Column("day", sa.String(10), primary_key=True),
    sa.Column("spent", Money, nullable=False),
    sa.Column("leased", Money, nullable=False),
)

usage = sa.Table(
    "usage", metadata,
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
    sa.Column("cost", Money, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("ttft_ms", sa.Float, nullable=True),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("error_code", sa.String(60), nullable=True),
    sa.Column("streamed", sa.Boolean, nullable=False),
    sa.Column("finish_reason", sa.String(40), nullable=True),
    sa.Column("user", sa.String(256), nullable=True),
    sa.Column("attempts", sa.JSON, nullable=False),
    utc_now_column("created_at"),
    # Who ended a stream that did not run to its end: "client", "upstream" or "shutdown".
    sa.Column("ended_by", sa.String(16), nullable=True),
    # The response's x-request-id: the client's own X-Request-Id when it sent one, else ours. Not
    # indexed: a random key in a B-tree costs every ledger write (+4% instructions per request).
    sa.Column("request_id", sa.String(128), nullable=True),
    # The logging headers' labels (X-Log-Session-ID; X-Log-Metadata as JSON text): not content.
    sa.Column("session_id", sa.String(128), nullable=True),
    sa.Column("log_metadata", sa.Text, nullable=True),
    sa.Index("ix_usage_key_created", "key_id", "created_at"),
    sa.Index("ix_usage_created", "created_at"),
)

# Ledger rows the database refused even after cleaning (the dead letters of the ledger writer):
# the record as JSON text, so nothing is lost and an operator can see why. Their credits were
# settled when they were set aside.
usage_rejects = sa.Table(
    "usage_rejects", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("generation_id", sa.String(64), nullable=False, index=True),
    sa.Column("record", sa.Text, nullable=False),
    sa.Column("error", sa.String(1000), nullable=False),
    utc_now_column("created_at"),
)
