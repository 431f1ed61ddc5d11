"""The per-request context: who is calling and what the answer must carry, typed, in one object
(the HTTP layer keeps it on its request; the serving core fills in the response headers)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from ..auth.principal import Principal
from ..upstream.trace_context import TraceContext

if TYPE_CHECKING:
    from .trace import RequestTrace


@dataclasses.dataclass(slots=True)
class RequestContext:
    principal: Principal
    request_id: str | None = None  # the response's x-request-id (recorded in the ledger)
    # Headers the answer must carry whatever it turns out to be (X-RateLimit-*, the attempts).
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    limits_taken: bool = False  # the rate limits were taken (their headers are set)
    trace_parent: TraceContext | None = None  # the client's valid traceparent/tracestate, if it sent them
    trace: RequestTrace | None = None  # set by the serving core when the request is traced or forwards a trace
