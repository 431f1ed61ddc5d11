"""Our `usage.cost` on an upstream's own answer (the native pass-through of the Messages and
Responses APIs): added beside the upstream's counts, everything else as it came."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def with_cost(body: dict[str, Any], ours: Any,
              shaped: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None) -> dict[str, Any]:
    """`body` (a message, a response object, a `message_delta`) with the `cost` of our usage (or
    the cost itself) added to its usage. A body without a usage of its own gets ours (the counts
    the gateway charged), in the API's shape by `shaped`, when given."""
    native_usage = body.get("usage")
    if not isinstance(native_usage, dict):
        counted = shaped(ours) if shaped is not None and isinstance(ours, dict) else None
        return body if counted is None else {**body, "usage": counted}
    cost = ours.get("cost") if isinstance(ours, dict) else ours
    if cost is None:
        return body
    return {**body, "usage": {**native_usage, "cost": cost}}
