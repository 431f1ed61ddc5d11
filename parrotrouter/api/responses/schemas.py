"""JSON Schemas of the Responses API's answers, for the gateway's OpenAPI document."""

from __future__ import annotations

from ..openapi.schemas import BOOL, COST, COUNT, INT, OBJECT, STRING, Schema, nullable, obj, ref

ITEM: Schema = obj({"type": STRING}, description="An input or output item (message, function_call, ...).")
RESPONSE_USAGE: Schema = obj({
    "input_tokens": COUNT, "input_tokens_details": obj({"cached_tokens": COUNT}),
    "output_tokens": COUNT, "output_tokens_details": obj({"reasoning_tokens": COUNT}), "total_tokens": COUNT,
    "cost": COST}, required=["input_tokens", "input_tokens_details", "output_tokens", "output_tokens_details",
                             "total_tokens"])

SCHEMAS: dict[str, Schema] = {
    "ResponseObject": obj({
        "id": {"type": "string", "pattern": "^resp_"}, "object": {"const": "response"}, "created_at": INT,
        "status": {"enum": ["completed", "incomplete", "failed", "in_progress"]}, "model": STRING,
        "output": {"type": "array", "items": ITEM}, "usage": nullable(RESPONSE_USAGE), "error": nullable(OBJECT),
        "incomplete_details": nullable(OBJECT)}),
    # One typed event of a stream: `event: <type>` and its JSON `data` (no [DONE]).
    "ResponseStreamEvent": obj({
        "event": STRING,
        "data": {"type": "string", "pattern": "^\\{", "contentMediaType": "application/json",
                 "contentSchema": obj({"type": STRING, "sequence_number": COUNT})},
    }, required=["data"]),
    "ResponseDeleted": obj({"id": STRING, "object": {"const": "response"}, "deleted": BOOL}),
    "ResponseItemList": obj({"object": {"const": "list"}, "data": {"type": "array", "items": ITEM},
                             "first_id": nullable(STRING), "last_id": nullable(STRING), "has_more": BOOL}),
}

__all__ = ["SCHEMAS", "ref"]
