"""The request log: one structured line per generation or embeddings request (logger
`parrotrouter.requests`, level INFO), written when its record is completed — tokens and cost
final — in the batches the ledger (or the observers' own loop) completes, never on the request
path. Ids, names, numbers and our own error codes only: never a key, a prompt or a completion.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..accounting.usage import UsageRecord
from .log_format import Fields

if TYPE_CHECKING:
    from ..serving.context import RequestContext

log = logging.getLogger("parrotrouter.requests")
MAX_VALUE = 256  # characters of a caller's string (the requested model) in the line, at most


def request_fields(record: UsageRecord) -> dict[str, Any]:
    """The line's fields, in order (add a field here and to the README's list)."""
    return {
        "request_id": record.request_id,
        "generation_id": record.id,
        "key_id": record.key_id,
        "account_id": record.account_id,
        "endpoint": record.endpoint,
        "model": record.requested_model[:MAX_VALUE],
        "served_model": record.served_model,
        "provider": record.provider,
        "deployment": record.deployment,
        "status": record.status,
        "error_code": record.error_code,
        "streamed": record.streamed,
        "ended_by": record.ended_by,
        "finish_reason": record.finish_reason,
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "cached_tokens": record.cached_tokens,
        "reasoning_tokens": record.reasoning_tokens,
        "cost_usd": float(record.cost),
        "latency_ms": round(record.latency_ms, 3),
        "ttft_ms": round(record.ttft_ms, 3) if record.ttft_ms is not None else None,
        "attempt_count": len(record.attempts),
        "attempts": [_attempt(a.deployment, a.status, a.error_code) for a in record.attempts],
    }


def _attempt(deployment: str, status: int, error_code: str | None) -> str:
    """One attempt as `deployment/status[/error]` (short in both formats; the ledger has them all)."""
    return f"{deployment}/{status}/{error_code}" if error_code else f"{deployment}/{status}"


class RequestLog:
    """The `Observer` writing the request log."""

    wants_completed = True

    def finished(self, record: UsageRecord, ctx: RequestContext) -> None:
        pass  # the line waits for the completed record (tokens and cost final)

    def completed(self, records: list[UsageRecord]) -> None:
        if not log.isEnabledFor(logging.INFO):  # --log-level warning or above: nothing built
            return
        for record in records:
            # `makeRecord` + `handle` is `log.info` without its search of the stack for the caller
            # (the costliest part of a log call, and the caller is always this line).
            log.handle(log.makeRecord(log.name, logging.INFO, __file__, 0, Fields("request", request_fields(record)),
                                      (), None, "completed"))

    async def start(self) -> None:
        pass

    async def aclose(self) -> None:
        pass
