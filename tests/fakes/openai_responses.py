"""OpenAI's Responses API (`POST /v1/responses`) as the fake OpenAI upstream serves it, in the
documented wire format: a `response` object, or typed SSE events (`event: <type>` and `data:`
with `type` and `sequence_number`) from response.created to response.completed.

The model name selects the behaviour, as for chat: `tools` calls `get_weather` (until the input
holds a `function_call_output`), `failed` fails mid-stream with response.failed, `500` answers
HTTP 500; anything else answers `ANSWER` (`no-usage`: a response object without usage).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from typing import Any

import orjson
from aiohttp import web

from .openai_upstream import ANSWER, WORDS

CALL_ARGUMENTS = ['{"city": ', '"Paris", ', '"unit": "celsius"}']
_ids = itertools.count(1)


def _usage(body: dict[str, Any], output_tokens: int) -> dict[str, Any]:
    text = orjson.dumps(body.get("input")).decode() + str(body.get("instructions") or "")
    input_tokens = max(1, len(text.split()))
    return {"input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens}


def _wants_tool(body: dict[str, Any]) -> bool:
    items = body.get("input")
    outputs = isinstance(items, list) and any(isinstance(i, dict) and i.get("type") == "function_call_output"
                                              for i in items)
    return str(body.get("model")).endswith("tools") and not outputs


def _shell(body: dict[str, Any], rid: str, status: str) -> dict[str, Any]:
    return {"id": rid, "object": "response", "created_at": 1741476542, "status": status, "background": False,
            "error": None, "incomplete_details": None, "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"), "model": body.get("model"), "output": [],
            "parallel_tool_calls": True, "previous_response_id": None, "reasoning": {"effort": None, "summary": None},
            "store": body.get("store", True), "temperature": 1.0, "text": {"format": {"type": "text"}},
            "tool_choice": "auto", "tools": body.get("tools") or [], "top_p": 1.0, "truncation": "disabled",
            "usage": None, "user": None, "metadata": {}}


def _items(body: dict[str, Any]) -> list[dict[str, Any]]:
    if _wants_tool(body):
        return [{"type": "function_call", "id": f"fc_up{next(_ids)}", "call_id": "call_up123", "name": "get_weather",
                 "arguments": "".join(CALL_ARGUMENTS), "status": "completed"}]
    return [{"type": "message", "id": f"msg_up{next(_ids)}", "status": "completed", "role": "assistant",
             "content": [{"type": "output_text", "text": ANSWER, "annotations": []}]}]


def response_object(body: dict[str, Any]) -> dict[str, Any]:
    out = _shell(body, f"resp_up{next(_ids)}", "completed")
    out["output"] = _items(body)
    out["usage"] = None if str(body.get("model")).endswith("no-usage") else _usage(body, len(WORDS))
    return out


def _events(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    rid = f"resp_up{next(_ids)}"
    yield {"type": "response.created", "response": _shell(body, rid, "in_progress")}
    yield {"type": "response.in_progress", "response": _shell(body, rid, "in_progress")}
    item = _items(body)[0]
    iid = item["id"]
    if item["type"] == "function_call":
        yield {"type": "response.output_item.added", "output_index": 0, "item": {**item, "arguments": "",
                                                                                 "status": "in_progress"}}
        for piece in CALL_ARGUMENTS:
            yield {"type": "response.function_call_arguments.delta", "item_id": iid, "output_index": 0, "delta": piece}
        yield {"type": "response.function_call_arguments.done", "item_id": iid, "output_index": 0,
               "arguments": item["arguments"]}
    else:
        yield {"type": "response.output_item.added", "output_index": 0,
               "item": {**item, "status": "in_progress", "content": []}}
        empty = {"type": "output_text", "text": "", "annotations": []}
        yield {"type": "response.content_part.added", "item_id": iid, "output_index": 0, "content_index": 0,
               "part": empty}
        for i, word in enumerate(WORDS):
            if i == 3 and str(body.get("model")).endswith("failed"):
                failed = {**_shell(body, rid, "failed"), "error": {"code": "server_error",
                                                                   "message": "The model failed mid-answer."}}
                yield {"type": "response.failed", "response": failed}
                return
            yield {"type": "response.output_text.delta", "item_id": iid, "output_index": 0, "content_index": 0,
                   "delta": word, "logprobs": []}
        yield {"type": "response.output_text.done", "item_id": iid, "output_index": 0, "content_index": 0,
               "text": ANSWER, "logprobs": []}
        yield {"type": "response.content_part.done", "item_id": iid, "output_index": 0, "content_index": 0,
               "part": {**empty, "text": ANSWER}}
    yield {"type": "response.output_item.done", "output_index": 0, "item": item}
    done = _shell(body, rid, "completed")
    done["output"], done["usage"] = [item], _usage(body, len(WORDS))
    yield {"type": "response.completed", "response": done}


async def serve(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    """Answer one `POST /v1/responses`."""
    if str(body.get("model")).endswith("500"):
        return web.json_response({"error": {"message": "The server had an error", "type": "server_error",
                                            "code": None}}, status=500)
    if not isinstance(body.get("input"), str | list) or not isinstance(body.get("model"), str):
        return web.json_response({"error": {"message": "Missing required parameter: 'input'.",
                                            "type": "invalid_request_error", "code": "missing_required_parameter",
                                            "param": "input"}}, status=400)
    if not body.get("stream"):
        return web.json_response(response_object(body))
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await resp.prepare(request)
    for seq, event in enumerate(_events(body)):
        event = {**event, "sequence_number": seq}
        await resp.write(b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n")
        await asyncio.sleep(0)
    return resp
