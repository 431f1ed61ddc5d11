"""The Messages API in the gateway's OpenAPI document: request bodies from the structs, the
Message, its stream events, the token count and Anthropic's error shape."""

from __future__ import annotations

import msgspec

from ..openapi.schemas import COST, COUNT, REF, STRING, Schema, nullable, obj, ref
from .encode import STOP_REASONS
from .protocol import CountTokensRequest, MessagesRequest

EVENT_TYPES = ["message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta",
               "message_stop", "ping", "error"]
_STOP = nullable({"enum": sorted(STOP_REASONS)})
_USAGE = obj({"input_tokens": COUNT, "output_tokens": COUNT, "cache_creation_input_tokens": nullable(COUNT),
              "cache_read_input_tokens": nullable(COUNT), "cost": COST}, required=["input_tokens", "output_tokens"])
_BLOCK = obj({"type": STRING}, description="A content block: text, thinking, redacted_thinking, tool_use, …")
MESSAGE: Schema = obj({
    "id": STRING, "type": {"const": "message"}, "role": {"const": "assistant"}, "model": STRING,
    "content": {"type": "array", "items": _BLOCK}, "stop_reason": _STOP, "stop_sequence": nullable(STRING),
    "usage": _USAGE,
})
ERROR: Schema = obj({"type": {"const": "error"}, "error": obj({"type": STRING, "message": STRING})},
                    description="Anthropic's error shape.")
EVENT: Schema = {"anyOf": [
    obj({"type": {"const": "message_start"}, "message": ref("AnthropicMessage")}),
    obj({"type": {"const": "content_block_start"}, "index": COUNT, "content_block": _BLOCK}),
    obj({"type": {"const": "content_block_delta"}, "index": COUNT, "delta": obj({"type": {"enum": [
        "text_delta", "input_json_delta", "thinking_delta", "signature_delta", "citations_delta"]}})}),
    obj({"type": {"const": "content_block_stop"}, "index": COUNT}),
    obj({"type": {"const": "message_delta"}, "delta": obj({"stop_reason": _STOP}, required=[]),
         "usage": obj({"output_tokens": COUNT}, required=[])}),
    obj({"type": {"const": "message_stop"}}),
    obj({"type": {"const": "ping"}}),
    ref("AnthropicError"),
]}
STREAM_EVENT: Schema = obj({
    "event": {"enum": EVENT_TYPES},
    "data": {"type": "string", "pattern": "^\\{", "contentMediaType": "application/json",
             "contentSchema": ref("AnthropicEvent")},
}, required=["event", "data"])

RESPONSE_SCHEMAS: dict[str, Schema] = {
    "AnthropicMessage": MESSAGE,
    "AnthropicError": ERROR,
    "AnthropicEvent": EVENT,
    "AnthropicStreamEvent": STREAM_EVENT,
    "MessageTokensCount": obj({"input_tokens": COUNT}),
}
EXAMPLES = {
    "message": {"value": {"model": "auto", "max_tokens": 64, "messages": [{"role": "user", "content": "Say hello."}]}},
    "stream": {"value": {"model": "auto", "max_tokens": 64, "stream": True, "system": "Be brief.",
                         "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hello."}]}]}},
    "tools": {"value": {"model": "auto", "max_tokens": 64, "tool_choice": {"type": "auto"},
                        "messages": [{"role": "user", "content": "Weather in Paris?"}],
                        "tools": [{"name": "get_weather", "input_schema": {
                            "type": "object", "properties": {"city": {"type": "string"}}}}]}},
}
COUNT_EXAMPLES = {"count": {"value": {"model": "auto", "messages": [{"role": "user", "content": "Say hello."}]}}}


def request_schemas() -> dict[str, Schema]:
    """Component schemas of the two request bodies (and the structs they use)."""
    _, components = msgspec.json.schema_components((MessagesRequest, CountTokensRequest), ref_template=REF)
    for name in ("MessagesRequest", "CountTokensRequest"):
        components[name]["properties"]["model"]["examples"] = ["auto"]
        components[name]["description"] = "Anthropic's Messages API body; unknown fields are accepted."
    out: dict[str, Schema] = components
    return out

