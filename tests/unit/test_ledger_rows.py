"""Ledger rows are valid for SQLite and PostgreSQL whatever the caller or the upstream sent, and
the writer tells a refused row from an unreachable database."""

from __future__ import annotations

import sqlite3
from decimal import Decimal

import orjson
import pytest
import sqlalchemy as sa

from parrotrouter.accounting.ledger import REFUSED, UNKNOWN, UNREACHABLE, verdict
from parrotrouter.accounting.ledger_rows import COLUMNS, record_from_json, record_json, row_of, row_view, text
from parrotrouter.accounting.usage import Attempt, UsageRecord
from parrotrouter.protocol.normalize import usage_dict
from parrotrouter.providers.openai_responses import chat_usage
from parrotrouter.store.schema import usage

SIZES = {c.name: c.type.length for c in usage.columns if isinstance(c.type, sa.String)}


def record(**kw: object) -> UsageRecord:
    base: dict[str, object] = {"id": "chatcmpl-1", "endpoint": "chat.completions", "requested_model": "gpt-4o-mini",
                               "key_id": "key_1", "account_id": "acct_1", "served_model": "gpt-4o-mini",
                               "provider": "fake", "deployment": "fake/gpt-4o-mini", "prompt_tokens": 3,
                               "completion_tokens": 5, "cost": Decimal("0.000001"), "finish_reason": "stop",
                               "user": "u-1", "latency_ms": 1.5}
    base.update(kw)
    return UsageRecord(**base)  # type: ignore[arg-type]


def as_dict(rec: UsageRecord, sqlite: bool = False) -> dict[str, object]:
    return dict(zip(COLUMNS, row_of(rec, sqlite), strict=True))


def valid_text(value: object, size: int) -> bool:
    if value is None:
        return True
    assert isinstance(value, str)
    value.encode("utf-8")  # raises on a lone surrogate
    return "\x00" not in value and len(value) <= size


def test_clean_values_pass_unchanged() -> None:
    rec = record(ended_by="client", attempts=[Attempt("fake", "fake/gpt-4o-mini", 200, None, 1.0)])
    row = as_dict(rec)
    for name in ("requested_model", "served_model", "provider", "deployment", "finish_reason", "user", "ended_by"):
        assert row[name] == getattr(rec, name)
    assert row["prompt_tokens"] == 3 and row["completion_tokens"] == 5 and row["cost"] == 1000
    assert orjson.loads(str(row["attempts"]))[0]["deployment"] == "fake/gpt-4o-mini"


@pytest.mark.parametrize("bad", ["a\x00b", "\ud800", "x\udfffy\x00", "é" * 10_000, "a" * 10_000, "\x00" * 300,
                                 "ok\ud83d\ude00"])
def test_every_text_field_is_made_valid(bad: str) -> None:
    fields = ("requested_model", "served_model", "provider", "deployment", "error_code", "finish_reason", "user",
              "ended_by")
    rec = record(**dict.fromkeys(fields, bad), attempts=[Attempt(bad, bad, 502, bad, 1.0)])
    for sqlite in (True, False):
        row = as_dict(rec, sqlite)
        for name in fields:
            assert valid_text(row[name], SIZES[name]), (name, row[name])
        attempts = str(row["attempts"])
        attempts.encode("utf-8")
        assert orjson.loads(attempts)[0]["status"] == 502
    assert as_dict(record(user="a\x00b"))["user"] == "ab"
    assert as_dict(record(user="x\ud800y"))["user"] == "x\ufffdy"


def test_text_of_other_types_and_none() -> None:
    assert text(None, 10) is None
    assert text(42, 10) == "42"
    assert text({"a": "\x00"}, 100) == "{'a': '\\x00'}"  # repr escapes NUL; the value is text now
    assert text("abc", 2) == "ab"


@pytest.mark.parametrize(("given", "stored"), [(2**70, 2**31 - 1), (-5, 0), (12.9, 12), ("7", 7), ("x", 0),
                                               (None, 0), (True, 1)])
def test_token_counts_fit_the_integer_columns(given: object, stored: int) -> None:
    row = as_dict(record(prompt_tokens=given, reasoning_tokens=given))
    assert row["prompt_tokens"] == row["reasoning_tokens"] == stored
    assert row["completion_tokens"] == 5


def test_upstream_usage_is_bounded_at_the_edge() -> None:
    rec = record(prompt_tokens=0, completion_tokens=0)
    rec.observe_usage({"prompt_tokens": 2**80, "completion_tokens": "12", "prompt_tokens_details": "nope",
                       "completion_tokens_details": {"reasoning_tokens": -3}})
    assert (rec.prompt_tokens, rec.completion_tokens, rec.cached_tokens, rec.reasoning_tokens) == (2**31 - 1, 12, 0, 0)
    rec.observe_usage(["not", "a", "dict"])  # type: ignore[arg-type]
    assert rec.completion_tokens == 12


@pytest.mark.parametrize("given", [{}, {"prompt_tokens": None, "completion_tokens": None, "total_tokens": None},
                                   {"prompt_tokens": "7", "completion_tokens": 2.0}, {"total_tokens": 9},
                                   chat_usage({}), usage_dict({"prompt_tokens": None})])
def test_a_usage_without_counts_is_no_report(given: dict[str, object] | None) -> None:
    """The gateway counts the tokens itself then: an upstream cannot make a request free."""
    rec = record(prompt_tokens=0, completion_tokens=0)
    rec.observe_usage(given)
    assert not rec.usage_reported
    rec.observe_usage({"prompt_tokens": 0, "completion_tokens": None})  # a count of 0 is a report
    assert rec.usage_reported


def test_record_json_round_trip_keeps_what_the_ledger_needs() -> None:
    rec = record(user="a\x00\ud800", ended_by="upstream", status=502, error_code="upstream_error",
                 attempts=[Attempt("fake", "fake/m", 502, "upstream_error", 3.5)], ttft_ms=2.0, streamed=True)
    obj = orjson.loads(orjson.dumps(record_json(rec)))
    back = record_from_json(obj)
    assert back.finalized and back.reservation is None
    assert back.user == "a\ufffd" and back.cost == rec.cost and back.status == 502 and back.streamed
    assert back.attempts[0].error_code == "upstream_error" and back.ended_by == "upstream"
    assert row_of(back, False)[1:] == row_of(record(user="a\ufffd", ended_by="upstream", status=502,
                                                    error_code="upstream_error", ttft_ms=2.0, streamed=True,
                                                    attempts=[Attempt("fake", "fake/m", 502, "upstream_error", 3.5)],
                                                    created_at=rec.created_at), False)[1:]
    view = row_view(obj)
    assert view.cost == rec.cost and view.user == "a\ufffd" and view.created_at.timestamp() == pytest.approx(
        rec.created_at)


def test_record_json_never_raises() -> None:
    rec = record(cost="not money", latency_ms=float("nan"), attempts=[object()])  # a record broken by a bug
    obj = record_json(rec)
    assert obj["id"] == "chatcmpl-1"
    orjson.dumps(obj)


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(("exc", "kind"), [
    (_PgError("22021"), REFUSED),  # NUL in text
    (_PgError("22001"), REFUSED),  # value too long
    (_PgError("23505"), REFUSED),  # unique violation
    (_PgError("08006"), UNREACHABLE),  # connection failure
    (_PgError("40P01"), UNREACHABLE),  # deadlock: try again, do not set aside
    (_PgError("57P01"), UNREACHABLE),  # admin shutdown
    (_PgError("53100"), UNREACHABLE),  # disk full
    (_PgError("42P01"), UNKNOWN),  # undefined table
    (_PgError("P0001"), UNKNOWN),  # raised by a trigger
    (sqlite3.IntegrityError("NOT NULL constraint failed"), REFUSED),
    (sqlite3.OperationalError("database is locked"), UNREACHABLE),
    (sqlite3.ProgrammingError("Error binding parameter 1"), UNKNOWN),
    (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"), REFUSED),
    (OverflowError("Python int too large to convert to SQLite INTEGER"), REFUSED),
    (ConnectionRefusedError(111, "refused"), UNREACHABLE),
    (TimeoutError(), UNREACHABLE),
    (RuntimeError("?"), UNKNOWN),
])
def test_verdict(exc: BaseException, kind: str) -> None:
    assert verdict(exc) == kind
    wrapped = sa.exc.DBAPIError("INSERT ...", None, exc)  # type: ignore[arg-type]
    assert verdict(wrapped) == kind


def test_verdict_follows_the_cause_chain() -> None:
    try:
        try:
            raise _PgError("22021")
        except _PgError as inner:
            raise RuntimeError("adapted") from inner
    except RuntimeError as outer:
        assert verdict(outer) == REFUSED
