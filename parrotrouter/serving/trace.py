"""A request's trace as the serving core sees it: each upstream attempt runs inside `attempt`.

Tracing on, `observe/tracing.py` gives one (a span per request, a child span per attempt, whose
context goes upstream); tracing off, a client's valid `traceparent` is still sent upstream
unchanged (`Forwarded`); neither, the request has no trace and the core does nothing.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol

from ..routing.router import Candidate
from ..upstream.trace_context import TraceContext, sending


class RequestTrace(Protocol):
    def attempt(self, cand: Candidate) -> AbstractContextManager[None]:
        """Around one upstream attempt (its outcome is in the usage record when it exits)."""
        ...


class Forwarded:
    """Tracing off: the client's own trace context goes upstream as it came."""

    __slots__ = ("context",)

    def __init__(self, context: TraceContext) -> None:
        self.context = context

    def attempt(self, cand: Candidate) -> AbstractContextManager[None]:
        return sending(self.context)
