"""Native passthrough: which models speak the Responses API themselves, and the body they get —
the client's, with the stored conversation of `previous_response_id` written out as input items
(the upstream is asked to store nothing: the conversation state is ours, whatever served it)."""

from __future__ import annotations

from typing import Any

from .encode import unpack_details
from .protocol import PER_CALL_TOOLS

DIALECT = "openai.responses"
# Items whose upstream ids mean nothing once the upstream stores nothing.
_ID_FREE = frozenset({"message", "function_call", "function_call_output", "custom_tool_call",
                      "custom_tool_call_output"})


def _replayable(item: dict[str, Any]) -> dict[str, Any] | None:
    kind = item.get("type")
    if kind == "reasoning":  # replayable only with the upstream's own encrypted state
        content = item.get("encrypted_content")
        return item if isinstance(content, str) and content and unpack_details(content) is None else None
    if kind in _ID_FREE:
        return {k: v for k, v in item.items() if k != "id"}
    return item


def upstream_body(raw: dict[str, Any], history: list[dict[str, Any]], items: list[dict[str, Any]]) -> dict[str, Any]:
    """The client's body for a native upstream: the conversation written out, nothing stored."""
    body = {k: v for k, v in raw.items() if k != "previous_response_id"}
    tools = body.get("tools")
    if isinstance(tools, list):  # what the provider bills per call never goes (see PER_CALL_TOOLS)
        body["tools"] = [t for t in tools if not (isinstance(t, dict) and t.get("type") in PER_CALL_TOOLS)]
    if history:
        replay = [r for item in history if (r := _replayable(item)) is not None]
        body["input"] = [*replay, *items]
    body["store"] = False
    include = body.get("include")
    include = list(include) if isinstance(include, list) else []
    if "reasoning.encrypted_content" not in include:  # so a later turn can replay its reasoning
        include.append("reasoning.encrypted_content")
    body["include"] = include
    return body
