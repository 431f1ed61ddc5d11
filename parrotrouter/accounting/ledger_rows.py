"""Ledger rows: a `UsageRecord` as the values the database is given, each valid for SQLite and
PostgreSQL, and the same record as JSON (dead letters, the shutdown spill file, answers about rows
not written yet).

Every text value is cleaned on its way in, whoever supplied it (the caller's `model` and `user`,
the upstream's finish reason, our own names): PostgreSQL refuses NUL in text and anything that is
not valid UTF-8 (a lone surrogate from a JSON `\\ud800` escape), and `varchar(n)` refuses more
than n characters. Token counts are clamped to the `Integer` columns. A clean ASCII value, by far
the most common, costs two C-level scans and a length check.
"""

from __future__ import annotations

import functools
import math
import re
import sqlite3
import time
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from types import SimpleNamespace
from typing import Any

import orjson
import sqlalchemy as sa

from ..store.schema import usage
from .credits import Bucket, Reservation
from .usage import TOKENS_MAX, Attempt, UsageRecord
from .usage import token_count as count

_SIZE = {c.name: c.type.length for c in usage.columns if isinstance(c.type, sa.String) and c.type.length}
_ID, _ENDPOINT, _KEY, _ACCOUNT = _SIZE["id"], _SIZE["endpoint"], _SIZE["key_id"], _SIZE["account_id"]
_MODEL, _SERVED, _PROVIDER = _SIZE["requested_model"], _SIZE["served_model"], _SIZE["provider"]
_DEPLOYMENT, _ERROR, _FINISH = _SIZE["deployment"], _SIZE["error_code"], _SIZE["finish_reason"]
_USER, _ENDED, _REQUEST_ID = _SIZE["user"], _SIZE["ended_by"], _SIZE["request_id"]
_SESSION = _SIZE["session_id"]
_METADATA_TEXT = 4096  # X-Log-Metadata is at most 2 KiB as sent
_ATTEMPT_TEXT = 300  # provider, deployment and error code inside the `attempts` JSON
_SURROGATES = re.compile("[\ud800-\udfff]")

COLUMNS = ("id", "endpoint", "key_id", "account_id", "requested_model", "served_model", "provider", "deployment",
           "prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens", "cost", "latency_ms",
           "ttft_ms", "status", "error_code", "streamed", "finish_reason", "user", "attempts", "created_at",
           "ended_by", "request_id", "session_id", "log_metadata")


def text(value: Any, size: int) -> str | None:
    """`value` as text both databases take: no NUL, valid UTF-8, at most `size` characters."""
    if value.__class__ is str:
        if len(value) <= size and value.isascii() and "\x00" not in value:
            return value
    elif value is None:
        return None
    return _clean(value, size)


def _clean(value: Any, size: int) -> str:
    cleaned = (value if isinstance(value, str) else str(value))[:size].replace("\x00", "")
    if not cleaned.isascii():
        cleaned = _SURROGATES.sub("\ufffd", cleaned)  # a lone surrogate cannot be encoded as UTF-8
    return cleaned


def attempts_json(attempts: list[Attempt]) -> str:
    if not attempts:
        return "[]"
    listed = [a.as_dict() for a in attempts]
    try:
        return orjson.dumps(listed).decode()
    except (orjson.JSONEncodeError, TypeError):  # a lone surrogate, or a value of a strange type
        return orjson.dumps(_clean_attempts(listed)).decode()


def _clean_attempts(listed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"provider": text(a.get("provider"), _ATTEMPT_TEXT), "deployment": text(a.get("deployment"), _ATTEMPT_TEXT),
             "status": count(a.get("status")), "error_code": text(a.get("error_code"), _ATTEMPT_TEXT),
             "latency_ms": _number(a.get("latency_ms")) or 0.0} for a in listed]


def row_of(rec: UsageRecord, sqlite: bool) -> tuple[Any, ...]:
    """One ledger row as driver parameters, in COLUMNS order (rows go to the driver directly:
    per-row SQLAlchemy parameter processing costs more than the insert itself). The id, endpoint,
    key and account ids are our own (generated, or read from our tables) and go as they are."""
    prompt, completion, cached, reasoning = rec.prompt_tokens, rec.completion_tokens, rec.cached_tokens, \
        rec.reasoning_tokens
    try:  # all four are ints in range iff their bitwise OR is (a negative int makes it negative)
        in_range = 0 <= (prompt | completion | cached | reasoning) <= TOKENS_MAX
    except TypeError:
        in_range = False
    if not in_range or prompt.__class__ is not int:
        prompt, completion, cached, reasoning = count(prompt), count(completion), count(cached), count(reasoning)
    return (
        rec.id, rec.endpoint, rec.key_id, rec.account_id, text(rec.requested_model, _MODEL) or "",
        text(rec.served_model, _SERVED), text(rec.provider, _PROVIDER), text(rec.deployment, _DEPLOYMENT),
        prompt, completion, cached, reasoning, rec.cost_nanos(),
        rec.latency_ms, rec.ttft_ms, rec.status, text(rec.error_code, _ERROR),
        int(rec.streamed) if sqlite else rec.streamed, text(rec.finish_reason, _FINISH), text(rec.user, _USER),
        attempts_json(rec.attempts),
        _sqlite_time(rec.created_at) if sqlite else datetime.fromtimestamp(rec.created_at, UTC),
        text(rec.ended_by, _ENDED), text(rec.request_id, _REQUEST_ID),
        text(rec.session_id, _SESSION) if rec.session_id is not None else None,
        metadata_json(rec.log_metadata) if rec.log_metadata is not None else None,
    )


def metadata_json(value: Any) -> str | None:
    """X-Log-Metadata as the JSON text the ledger keeps (validated at the edge; cleaned again)."""
    if not value:
        return None
    try:
        return text(orjson.dumps(value).decode(), _METADATA_TEXT)
    except (orjson.JSONEncodeError, TypeError):
        return None


def _sqlite_time(ts: float) -> str:
    """SQLAlchemy's SQLite DATETIME storage format (UTC), so reads through the ORM agree."""
    second = int(ts)
    return f"{_utc_second(second)}.{int((ts - second) * 1_000_000):06d}"


@functools.lru_cache(maxsize=4)
def _utc_second(second: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second))


_COLS = ", ".join(f'"{c}"' for c in COLUMNS)
_SQLITE_ROW = "(" + ", ".join("?" for _ in COLUMNS) + ")"
# Multi-row INSERTs of 512, 256, ..., 1 rows: ten statement texts, each parsed once and then
# found in the driver's statement cache. (SQLite before 3.32 binds at most 999 parameters per
# statement: 32 rows there.)
SQLITE_MAX_ROWS = 512 if sqlite3.sqlite_version_info >= (3, 32, 0) else 32
SQLITE_INSERTS = {n: f"INSERT INTO usage ({_COLS}) VALUES " + ", ".join([_SQLITE_ROW] * n)
                  for n in (1 << b for b in range(SQLITE_MAX_ROWS.bit_length()))}
PG_INSERT = f"INSERT INTO usage ({_COLS}) VALUES (" + ", ".join(
    f"${i + 1}::json" if c == "attempts" else f"${i + 1}" for i, c in enumerate(COLUMNS)) + ")"


# ---------------------------------------------------------------------- the record as JSON
def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _money(value: Any) -> str:
    try:
        amount = Decimal(value)
    except (TypeError, ValueError, InvalidOperation):
        return "0"
    return str(amount) if amount.is_finite() else "0"


def record_json(rec: UsageRecord) -> dict[str, Any]:
    """The record's ledger values, cleaned as for the database, as a JSON-ready dict. Never
    raises: a record that broke the writer is described as far as it can be."""
    try:
        return _record_json(rec)
    except Exception:
        return {"id": text(getattr(rec, "id", None), _ID) or "", "unreadable": text(repr(rec), 4000)}


def _record_json(rec: UsageRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": text(rec.id, _ID) or "", "endpoint": text(rec.endpoint, _ENDPOINT), "key_id": text(rec.key_id, _KEY),
        "account_id": text(rec.account_id, _ACCOUNT), "requested_model": text(rec.requested_model, _MODEL) or "",
        "served_model": text(rec.served_model, _SERVED), "provider": text(rec.provider, _PROVIDER),
        "deployment": text(rec.deployment, _DEPLOYMENT), "prompt_tokens": count(rec.prompt_tokens),
        "completion_tokens": count(rec.completion_tokens), "cached_tokens": count(rec.cached_tokens),
        "reasoning_tokens": count(rec.reasoning_tokens), "cost": _money(rec.cost),
        "latency_ms": _number(rec.latency_ms) or 0.0, "ttft_ms": _number(rec.ttft_ms),
        "status": count(rec.status), "error_code": text(rec.error_code, _ERROR), "streamed": bool(rec.streamed),
        "finish_reason": text(rec.finish_reason, _FINISH), "user": text(rec.user, _USER),
        "attempts": orjson.loads(attempts_json(rec.attempts)), "created_at": _number(rec.created_at) or 0.0,
        "ended_by": text(rec.ended_by, _ENDED), "request_id": text(rec.request_id, _REQUEST_ID),
        "session_id": text(rec.session_id, _SESSION), "log_metadata": metadata_json(rec.log_metadata),
    }
    if rec.observed:  # the observers saw it (metrics, request log): a replay must not count it again
        out["observed"] = True
    res = rec.reservation
    if res is not None:  # what the settlement needs, should the record be written by another process
        out["reservation"] = {"amount": _money(res.amount), "account_id": text(res.account_id, _ACCOUNT),
                              "key_id": text(res.key_id, _KEY), "day": text(res.day, 10),
                              "buckets": [[b.name, b.kind, b.ref, b.day] for b in res.buckets]}
    return out


def record_from_json(obj: dict[str, Any]) -> UsageRecord:
    """A record written by `record_json` (a spill file line), ready to be written: finalized, and
    settled without a reservation of this process (the money it reserved was leased by the
    process that wrote the file, and is reclaimed with that process's leases)."""
    rec = UsageRecord(id=str(obj["id"]), endpoint=str(obj["endpoint"]), requested_model=str(obj["requested_model"]),
                      key_id=obj.get("key_id"), account_id=obj.get("account_id"),
                      served_model=obj.get("served_model"), provider=obj.get("provider"),
                      deployment=obj.get("deployment"), prompt_tokens=count(obj.get("prompt_tokens")),
                      completion_tokens=count(obj.get("completion_tokens")),
                      cached_tokens=count(obj.get("cached_tokens")),
                      reasoning_tokens=count(obj.get("reasoning_tokens")), cost=Decimal(_money(obj.get("cost"))),
                      status=count(obj.get("status")), error_code=obj.get("error_code"),
                      streamed=bool(obj.get("streamed")), finish_reason=obj.get("finish_reason"),
                      user=obj.get("user"), ended_by=obj.get("ended_by"), request_id=obj.get("request_id"),
                      session_id=obj.get("session_id"), log_metadata=metadata_of(obj.get("log_metadata")),
                      created_at=_number(obj.get("created_at")) or time.time(),
                      latency_ms=_number(obj.get("latency_ms")) or 0.0, ttft_ms=_number(obj.get("ttft_ms")),
                      attempts=[Attempt(str(a["provider"]), str(a["deployment"]), count(a["status"]),
                                        a.get("error_code"), _number(a.get("latency_ms")) or 0.0)
                                for a in obj.get("attempts") or []],
                      finalized=True, observed=obj.get("observed") is True)
    res = obj.get("reservation")
    if res:
        buckets = tuple(Bucket(name, kind, ref, day=day) for name, kind, ref, day in res["buckets"])
        rec.reservation = Reservation(0, buckets, str(res["account_id"]), str(res["key_id"]), str(res["day"]))
    return rec


def metadata_of(value: Any) -> dict[str, str] | None:
    """Stored X-Log-Metadata JSON text back as a dict (None: none, or unreadable)."""
    if not isinstance(value, str):
        return None
    try:
        loaded = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else None


def row_view(obj: dict[str, Any]) -> SimpleNamespace:
    """`record_json` output shaped like a `usage` row read through SQLAlchemy (for the
    /v1/generation answer about a row that is queued or was set aside)."""
    view = SimpleNamespace(**{c: obj.get(c) for c in COLUMNS})
    view.cost = Decimal(_money(obj.get("cost")))
    view.created_at = datetime.fromtimestamp(_number(obj.get("created_at")) or 0.0, UTC)
    view.latency_ms = _number(obj.get("latency_ms")) or 0.0
    view.attempts = obj.get("attempts") or []
    for name in ("prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens", "status"):
        setattr(view, name, count(obj.get(name)))
    return view
