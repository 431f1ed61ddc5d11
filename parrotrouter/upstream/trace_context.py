"""W3C Trace Context (`traceparent`, `tracestate`): validated where a client sends it, sent on
every upstream call of the attempt that is under way.

The serving layer says which context an attempt carries by setting `OUTGOING` around it (the
tracing layer's attempt span, or the client's own context when tracing is off); `UpstreamClient`
adds it to the request's headers. Providers know nothing of it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Iterator
from contextvars import ContextVar

# version 00: 2 hex, trace-id 32 hex, parent-id 16 hex, flags 2 hex (lowercase). A later version
# may append fields after a dash; its first four read as version 00 (W3C Trace Context, 4.3).
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?", re.ASCII | re.DOTALL)
_MEMBER_KEY = re.compile(r"[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13}", re.ASCII)
_MEMBER_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]", re.ASCII)
MAX_TRACEPARENT = 512  # characters of a (future-version) traceparent, at most
MAX_TRACESTATE = 512  # characters of tracestate we pass on (the spec asks at least 512 be kept)
MAX_MEMBERS = 32  # list-members of a tracestate (the spec's limit)


@dataclasses.dataclass(frozen=True, slots=True)
class TraceContext:
    """A validated trace context, as sent upstream."""

    traceparent: str
    tracestate: str | None = None

    def headers(self) -> dict[str, str]:
        if self.tracestate:
            return {"traceparent": self.traceparent, "tracestate": self.tracestate}
        return {"traceparent": self.traceparent}


def parse_traceparent(value: str | None) -> str | None:
    """The traceparent as version 00, or None when it is not a valid one (never forwarded then)."""
    if not value or len(value) > MAX_TRACEPARENT:
        return None
    match = _TRACEPARENT.fullmatch(value.strip(" \t"))
    if match is None:
        return None
    version, trace_id, parent_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return None
    if trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return f"00-{trace_id}-{parent_id}-{flags}"


def parse_tracestate(value: str | None) -> str | None:
    """The tracestate when every list-member is well formed (at most 32, 512 characters), else
    None: a broken one is dropped whole, as the spec allows."""
    if not value or len(value) > MAX_TRACESTATE:
        return None
    members = [m.strip(" \t") for m in value.split(",")]
    members = [m for m in members if m]
    if not members or len(members) > MAX_MEMBERS:
        return None
    keys = set()
    for member in members:
        key, eq, val = member.partition("=")
        if not eq or _MEMBER_KEY.fullmatch(key) is None or _MEMBER_VALUE.fullmatch(val) is None or key in keys:
            return None
        keys.add(key)
    return ",".join(members)


def from_headers(traceparent: str | None, tracestate: str | None) -> TraceContext | None:
    """The client's trace context, validated; None when its traceparent is missing or invalid."""
    parent = parse_traceparent(traceparent)
    if parent is None:
        return None
    return TraceContext(parent, parse_tracestate(tracestate))


# The context the upstream call under way carries: a context variable, because it belongs to the
# task making the call (and to the tasks it starts, e.g. the parts of a split embeddings call).
OUTGOING: ContextVar[TraceContext | None] = ContextVar("parrotrouter_outgoing_trace", default=None)


@contextlib.contextmanager
def sending(context: TraceContext) -> Iterator[None]:
    """Upstream calls made inside carry `context`."""
    token = OUTGOING.set(context)
    try:
        yield
    finally:
        OUTGOING.reset(token)
