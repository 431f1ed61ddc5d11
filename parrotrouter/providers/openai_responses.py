"""OpenAI's Responses API spoken natively (dialect "openai.responses"), by OpenAI itself and by
Azure OpenAI: the client's body goes to the upstream's `/responses` with only the model (and
credentials) changed. What the serving core observes is a chat-shaped view of the answer (text,
tool calls, finish, usage); the upstream's own response object or events ride along under
`"native"`.

Only the real OpenAI API (the `openai` preset, or its base URL) and Azure take it: most other
OpenAI-compatible servers have no `/responses`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from ..catalog import ProviderSpec
from ..errors import FailureKind, UpstreamFailure
from ..upstream.client import ServerSentEvent, UpstreamRequest
from .base import GATEWAY_FIELDS, NativeCall, json_object, malformed
from .http import HttpProvider
from .openai_compat import OpenAIAdapter, OpenAIProvider

DIALECT = "openai.responses"
OPENAI_URL = "https://api.openai.com/"
_INCOMPLETE_FINISH = {"max_output_tokens": "length", "content_filter": "content_filter"}


def speaks_responses(spec: ProviderSpec) -> bool:
    """The real OpenAI API: the `openai` preset's provider, or its URL."""
    return spec.type == "openai" and (spec.name == "openai" or (spec.base_url or "").startswith(OPENAI_URL))


def chat_usage(usage: Any) -> dict[str, Any] | None:
    """Responses usage in the chat names the ledger reads."""
    if not isinstance(usage, dict):
        return None
    out: dict[str, Any] = {"prompt_tokens": usage.get("input_tokens"), "completion_tokens": usage.get("output_tokens"),
                           "total_tokens": usage.get("total_tokens")}
    details = usage.get("input_tokens_details")
    if isinstance(details, dict):
        out["prompt_tokens_details"] = {"cached_tokens": details.get("cached_tokens")}
    details = usage.get("output_tokens_details")
    if isinstance(details, dict):
        out["completion_tokens_details"] = {"reasoning_tokens": details.get("reasoning_tokens")}
    return out


def finish_of(response: dict[str, Any], calls: bool) -> str:
    details = response.get("incomplete_details")
    if response.get("status") == "incomplete" and isinstance(details, dict):
        return _INCOMPLETE_FINISH.get(str(details.get("reason")), "length")
    return "tool_calls" if calls else "stop"


def _failure(response: dict[str, Any], provider: str) -> UpstreamFailure:
    error = response.get("error")
    if not isinstance(error, dict):
        error = {}
    code = str(error.get("code") or "")
    kind = FailureKind.RATE_LIMIT if code == "rate_limit_exceeded" else FailureKind.SERVER_ERROR
    return UpstreamFailure(f"The provider '{provider}' failed the response ({code or 'no code'}).", kind=kind)


def chat_view(response: dict[str, Any]) -> dict[str, Any]:
    """A response object as the chat.completion the core accounts with; the object under "native"."""
    texts, refusals, reasoning, calls = [], [], [], []
    for item in response.get("output") or ():
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "message":
            for part in item.get("content") or ():
                if isinstance(part, dict):
                    texts.append(str(part.get("text") or "")) if part.get("type") == "output_text" else \
                        refusals.append(str(part.get("refusal") or ""))
        elif kind == "reasoning":
            reasoning += [str(s.get("text") or "") for s in item.get("summary") or () if isinstance(s, dict)]
        elif kind in ("function_call", "custom_tool_call"):
            arguments = item.get("arguments") if kind == "function_call" else \
                orjson.dumps({"input": item.get("input")}).decode()
            calls.append({"id": item.get("call_id"), "type": "function",
                          "function": {"name": item.get("name"), "arguments": arguments}})
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if refusals:
        message["refusal"] = "".join(refusals)
    if reasoning:
        message["reasoning"] = "".join(reasoning)
    if calls:
        message["tool_calls"] = calls
    return {"id": response.get("id"), "object": "chat.completion", "created": response.get("created_at"),
            "model": response.get("model"), "usage": chat_usage(response.get("usage")), "native": response,
            "choices": [{"index": 0, "message": message, "finish_reason": finish_of(response, bool(calls))}]}


class ResponsesStream:
    """Responses SSE (`event: <type>` / `data: {...}`) as chunks: text, arguments and reasoning
    deltas as chat deltas (for counting), the finish and usage at the end; every event under
    "native"."""

    __slots__ = ("done", "provider")

    def __init__(self, provider: str) -> None:
        self.done = False
        self.provider = provider

    def feed(self, event: ServerSentEvent) -> list[dict[str, Any]]:
        data = json_object(event.data, "stream event")
        kind = data.get("type")
        if kind == "error":
            raise UpstreamFailure(f"The provider '{self.provider}' failed the stream "
                                  f"({str(data.get('code') or 'no code')[:60]}).", kind=FailureKind.SERVER_ERROR)
        response = data.get("response")
        if not isinstance(response, dict):
            response = {}
        if kind == "response.failed":
            raise _failure(response, self.provider)
        delta: dict[str, Any] | None = None
        if kind == "response.output_text.delta":
            delta = {"content": str(data.get("delta") or "")}
        elif kind == "response.reasoning_summary_text.delta":
            delta = {"reasoning": str(data.get("delta") or "")}
        elif kind in ("response.function_call_arguments.delta", "response.custom_tool_call_input.delta"):
            delta = {"tool_calls": [{"index": data.get("output_index") or 0,
                                     "function": {"arguments": str(data.get("delta") or "")}}]}
        chunk: dict[str, Any] = {"choices": [], "native": [data]}
        if delta is not None:
            chunk["choices"] = [{"index": 0, "delta": delta, "finish_reason": None}]
        elif kind in ("response.completed", "response.incomplete"):
            self.done = True
            calls = any(isinstance(i, dict) and i.get("type") in ("function_call", "custom_tool_call")
                        for i in response.get("output") or ())
            chunk["choices"] = [{"index": 0, "delta": {}, "finish_reason": finish_of(response, calls)}]
            if (usage := chat_usage(response.get("usage"))) is not None:
                chunk["usage"] = usage
        return [chunk]


class ResponsesProvider(OpenAIProvider):
    """An OpenAI-compatible provider that also takes the Responses API natively."""

    native_dialects = frozenset({DIALECT})

    def _request(self, call: NativeCall) -> UpstreamRequest:
        model = call.chat.deployment.upstream_model
        url = self.openai.responses_url(model)
        assert url is not None
        body = {k: v for k, v in call.body.items() if k not in GATEWAY_FIELDS}
        body["model"] = model
        return UpstreamRequest(url, orjson.dumps(body), self.openai.headers, call.stream)

    async def native(self, call: NativeCall) -> dict[str, Any]:
        response = json_object(await self._call(self._request(call)), "response")
        if response.get("status") == "failed":
            raise _failure(response, self.name)
        if not isinstance(response.get("output"), list):
            raise malformed("response")
        return chat_view(response)

    def native_stream(self, call: NativeCall) -> AsyncIterator[list[dict[str, Any]]]:
        return self._stream(self._request(call), ResponsesStream(self.name))


def build_http_provider(spec: ProviderSpec, adapter: OpenAIAdapter) -> HttpProvider:
    """The provider of an OpenAI-compatible spec: one that also takes the Responses API natively
    when its upstream has it (OpenAI itself; Azure on an api-version that offers it)."""
    if adapter.responses_url("") is not None and (spec.type == "azure" or speaks_responses(spec)):
        return ResponsesProvider(spec, adapter)
    return OpenAIProvider(spec, adapter)
