"""The per-request context: who is calling and what the answer must carry, typed, in one object
(the HTTP layer keeps it on its request; the serving core fills in the response headers)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from ..auth.principal import Principal
from ..upstream.trace_context import TraceContext

if TYPE_CHECKING:
    from .trace import RequestTrace


@dataclasses.dataclass(frozen=True, slots=True)
class LogRequest:
    """What the request's logging headers ask (api/logging_headers.py), already validated and
    bounded, and already decided against the operator's `content_logging`."""

    level: str = "error"  # X-Logging-Level: error, info or debug
    user_id: str | None = None  # X-Log-User-ID (the ledger's `user`)
    session_id: str | None = None  # X-Log-Session-ID
    metadata: dict[str, str] | None = None  # X-Log-Metadata
    # The client's request body to store (X-Log-Request at debug, operator allowing): content,
    # never in a repr.
    request_body: str | None = dataclasses.field(default=None, repr=False)
    keep_response: bool = False  # store the answer (X-Log-Response at debug, operator allowing)


@dataclasses.dataclass(slots=True)
class RequestContext:
    principal: Principal
    request_id: str | None = None  # the response's x-request-id (recorded in the ledger)
    # Headers the answer must carry whatever it turns out to be (X-RateLimit-*, the attempts).
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    limits_taken: bool = False  # the rate limits were taken (their headers are set)
    recorded: bool = False  # the serving core recorded it (metrics count it there, not as a refusal)
    logging: LogRequest | None = None  # the logging headers, when the request sent any
    trace_parent: TraceContext | None = None  # the client's valid traceparent/tracestate, if it sent them
    trace: RequestTrace | None = None  # set by the serving core when the request is traced or forwards a trace
