"""Anthropic Messages API (`type: anthropic`): OpenAI chat requests to /v1/messages and back.

Requests: system/developer messages hoisted to `system`; consecutive same-role turns merged;
images as base64 or url sources; `max_tokens` always sent; `stop` as `stop_sequences`; tools
with `input_schema`; `tool_choice` auto/none/required/named as auto/none/any/tool (with
`disable_parallel_tool_use`); assistant tool calls as `tool_use` blocks and tool messages as
`tool_result` blocks in one user turn; `response_format` as native structured output
(`output_config.format`); reasoning as `thinking` with a budget; `user` as `metadata.user_id`.
The current Messages API has no `temperature`, `top_p` or `top_k`: they are not sent.
Responses and stream events come back as OpenAI objects; thinking as `reasoning` with its
signature in `reasoning_details`, so a client that sends the message back continues the turn.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ..catalog import ProviderSpec
from ..errors import FailureKind, InvalidRequest, UpstreamFailure, echo
from ..protocol.chat import (
    AssistantMessage,
    ChatCompletionRequest,
    DeveloperMessage,
    FunctionMessage,
    FunctionTool,
    ImagePart,
    JsonObjectFormat,
    JsonSchemaFormat,
    NamedToolChoice,
    SystemMessage,
    TextPart,
    ToolMessage,
    UserMessage,
    message_text,
)
from ..upstream.client import ServerSentEvent, UpstreamRequest
from .base import ChatCall, CompletionCall, client_detail, json_or_none, malformed, upstream_failure
from .http import HttpProvider
from .presets import Preset
from .registry import ProviderType
from .translate import data_url, dump_arguments, parse_arguments, reject_unsupported, thinking_budget

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
SIGNATURE_FORMAT = "anthropic-claude-v1"
FINISH = {"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "max_tokens": "length",
          "model_context_window_exceeded": "length", "tool_use": "tool_calls", "refusal": "content_filter"}
ERROR_KINDS = {"rate_limit_error": FailureKind.RATE_LIMIT, "overloaded_error": FailureKind.MODEL_OVERLOADED,
               "api_error": FailureKind.SERVER_ERROR, "authentication_error": FailureKind.AUTH,
               "permission_error": FailureKind.AUTH, "not_found_error": FailureKind.NOT_FOUND,
               "invalid_request_error": FailureKind.BAD_REQUEST, "request_too_large": FailureKind.BAD_REQUEST}


# ---------------------------------------------------------------------- request
def _image(part: ImagePart) -> dict[str, Any]:
    url = part.image_url.url
    inline = data_url(url)
    if inline is None:
        return {"type": "image", "source": {"type": "url", "url": url}}
    mime, data = inline
    if mime not in IMAGE_TYPES:
        raise InvalidRequest(f"Anthropic accepts JPEG, PNG, GIF and WebP images, not {echo(mime)}.",
                             param="messages")
    return {"type": "image", "source": {"type": "base64", "media_type": mime, "data": data}}


def _user_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks = []
    for part in content:
        if isinstance(part, TextPart):
            blocks.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            blocks.append(_image(part))
        else:
            raise InvalidRequest("Anthropic accepts text and image content parts.", param="messages")
    return blocks


def _assistant_blocks(m: AssistantMessage, i: int) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for detail in m.reasoning_details or ():
        if detail.get("type") == "reasoning.text" and detail.get("signature"):
            blocks.append({"type": "thinking", "thinking": detail.get("text") or "", "signature": detail["signature"]})
        elif detail.get("type") == "reasoning.encrypted" and detail.get("data"):
            blocks.append({"type": "redacted_thinking", "data": detail["data"]})
    text = message_text(m.content) or (m.refusal or "")
    if text:
        blocks.append({"type": "text", "text": text})
    for call in m.tool_calls or ():
        fn = getattr(call, "function", None)
        if fn is None:
            raise InvalidRequest("Anthropic supports function tool calls only.", param=f"messages[{i}].tool_calls")
        blocks.append({"type": "tool_use", "id": call.id, "name": fn.name,
                       "input": parse_arguments(fn.arguments, f"messages[{i}]")})
    return blocks


def _messages(request: ChatCompletionRequest) -> list[dict[str, Any]]:
    turns: list[dict[str, Any]] = []
    for i, m in enumerate(request.messages):
        if isinstance(m, SystemMessage | DeveloperMessage):
            continue
        if isinstance(m, UserMessage):
            role, blocks = "user", _user_blocks(m.content)
        elif isinstance(m, AssistantMessage):
            role, blocks = "assistant", _assistant_blocks(m, i)
        elif isinstance(m, ToolMessage):
            role, blocks = "user", [{"type": "tool_result", "tool_use_id": m.tool_call_id,
                                     "content": message_text(m.content)}]
        else:
            assert isinstance(m, FunctionMessage)
            role, blocks = "user", [{"type": "text", "text": m.content or ""}]
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:  # the API wants user and assistant turns to alternate
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    if not turns:
        raise InvalidRequest("Anthropic needs at least one user or assistant message besides system ones.",
                             param="messages")
    return turns


def _tools(request: ChatCompletionRequest, body: dict[str, Any]) -> None:
    if not request.tools:
        return
    tools = []
    for tool in request.tools:
        if not isinstance(tool, FunctionTool):
            raise InvalidRequest("Anthropic supports function tools only.", param="tools")
        fn = tool.function
        entry: dict[str, Any] = {"name": fn.name, "input_schema": fn.parameters or {"type": "object", "properties": {}}}
        if fn.description:
            entry["description"] = fn.description
        tools.append(entry)
    body["tools"] = tools
    choice = request.tool_choice
    no_parallel = {"disable_parallel_tool_use": True} if request.parallel_tool_calls is False else {}
    if choice == "none":
        body["tool_choice"] = {"type": "none"}
    elif choice == "required":
        body["tool_choice"] = {"type": "any", **no_parallel}
    elif isinstance(choice, NamedToolChoice):
        body["tool_choice"] = {"type": "tool", "name": choice.function.name, **no_parallel}
    elif choice in (None, "auto"):
        if no_parallel:
            body["tool_choice"] = {"type": "auto", **no_parallel}
    else:
        raise InvalidRequest("This tool_choice is not supported by Anthropic.", param="tool_choice")


def to_anthropic(request: ChatCompletionRequest, model: str, default_max_tokens: int | None) -> dict[str, Any]:
    reject_unsupported(request, "anthropic")
    body: dict[str, Any] = {"model": model,
                            "max_tokens": request.output_limit or default_max_tokens or DEFAULT_MAX_TOKENS,
                            "messages": _messages(request)}
    system = [{"type": "text", "text": message_text(m.content)} for m in request.messages
              if isinstance(m, SystemMessage | DeveloperMessage)]
    if system:
        body["system"] = system
    if request.stop_list:
        body["stop_sequences"] = request.stop_list
    _tools(request, body)
    fmt = request.response_format
    if isinstance(fmt, JsonSchemaFormat):
        body["output_config"] = {"format": {"type": "json_schema",
                                            "schema": fmt.json_schema.schema or {"type": "object"}}}
    elif isinstance(fmt, JsonObjectFormat):
        body["output_config"] = {"format": {"type": "json_schema", "schema": {"type": "object"}}}
    budget = thinking_budget(request)
    if budget is not None:
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
        if body["max_tokens"] <= budget:  # the answer's budget comes on top of the thinking budget
            body["max_tokens"] += budget
    if request.user:
        body["metadata"] = {"user_id": request.user}
    if request.stream:
        body["stream"] = True
    return body


# ---------------------------------------------------------------------- response
def usage_of(usage: Mapping[str, Any]) -> dict[str, Any]:
    """Anthropic counts cache reads and writes apart from `input_tokens`; OpenAI's prompt_tokens
    includes them, with the cached part in `prompt_tokens_details`."""
    read = usage.get("cache_read_input_tokens") or 0
    write = usage.get("cache_creation_input_tokens") or 0
    prompt = (usage.get("input_tokens") or 0) + read + write
    completion = usage.get("output_tokens") or 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": read, "cache_write_tokens": write}}


def finish_of(stop_reason: str | None) -> tuple[str, str | None]:
    return FINISH.get(stop_reason or "", "stop"), stop_reason


def from_anthropic(msg: Mapping[str, Any]) -> dict[str, Any]:
    text: list[str] = []
    reasoning: list[str] = []
    details: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for block in msg.get("content") or ():
        kind = block.get("type")
        if kind == "text":
            text.append(block.get("text") or "")
        elif kind == "tool_use":
            calls.append({"id": block["id"], "type": "function",
                          "function": {"name": block["name"], "arguments": dump_arguments(block.get("input"))}})
        elif kind == "thinking":
            reasoning.append(block.get("thinking") or "")
            details.append({"type": "reasoning.text", "text": block.get("thinking") or "",
                            "signature": block.get("signature"), "format": SIGNATURE_FORMAT})
        elif kind == "redacted_thinking":
            details.append({"type": "reasoning.encrypted", "data": block.get("data"), "format": SIGNATURE_FORMAT})
    finish, native = finish_of(msg.get("stop_reason"))
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not calls else None,
                               "refusal": None}
    if calls:
        message["tool_calls"] = calls
    if details:
        message["reasoning"] = "".join(reasoning)
        message["reasoning_details"] = details
    return {"object": "chat.completion",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish,
                         "native_finish_reason": native}],
            "usage": usage_of(msg.get("usage") or {})}


class AnthropicStream:
    """Messages stream events to OpenAI chunks. Tool calls: the first delta carries id and name,
    later ones argument fragments, indexed in order of appearance, as the OpenAI SDK expects."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.done = False
        self.usage: dict[str, Any] = {}
        self.tools: dict[int, int] = {}  # content block index -> tool call index
        self.details: dict[int, int] = {}  # content block index -> reasoning_details index

    def feed(self, event: ServerSentEvent) -> list[dict[str, Any]]:
        try:
            data = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            raise malformed("stream event") from None
        kind = data.get("type") if isinstance(data, dict) else None
        handler = getattr(self, f"_on_{kind}", None)
        if handler is None:
            return []  # ping, and event types added after this adapter was written
        chunks: list[dict[str, Any]] = handler(data)
        return chunks

    @staticmethod
    def _chunk(delta: dict[str, Any], finish: str | None = None, native: str | None = None) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        if native is not None:
            choice["native_finish_reason"] = native
        return {"object": "chat.completion.chunk", "choices": [choice]}

    def _on_message_start(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        self.usage = dict((data.get("message") or {}).get("usage") or {})
        return [self._chunk({"role": "assistant", "content": ""})]

    def _on_content_block_start(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        block = data.get("content_block") or {}
        if block.get("type") == "tool_use":
            index = self.tools[data["index"]] = len(self.tools)
            return [self._chunk({"tool_calls": [{"index": index, "id": block["id"], "type": "function",
                                                 "function": {"name": block["name"], "arguments": ""}}]})]
        if block.get("type") == "text" and block.get("text"):
            return [self._chunk({"content": block["text"]})]
        if block.get("type") in ("thinking", "redacted_thinking"):
            # reasoning_details entries carry an index, so stream accumulators merge their pieces
            index = self.details[data["index"]] = len(self.details)
            if block["type"] == "redacted_thinking":
                return [self._chunk({"reasoning_details": [{"index": index, "type": "reasoning.encrypted",
                                                            "data": block.get("data"), "format": SIGNATURE_FORMAT}]})]
        return []

    def _on_content_block_delta(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        delta = data.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta":
            return [self._chunk({"content": delta.get("text") or ""})]
        if kind == "input_json_delta":
            index = self.tools.get(data.get("index", -1))
            if index is None:
                raise malformed("stream: tool input for a block that is not a tool call")
            return [self._chunk({"tool_calls": [{"index": index, "function": {"arguments": delta.get("partial_json")
                                                                               or ""}}]})]
        if kind in ("thinking_delta", "signature_delta"):
            index = self.details.get(data.get("index", -1))
            if index is None:
                raise malformed("stream: thinking for a block that is not a thinking block")
            detail = {"index": index, "type": "reasoning.text", "format": SIGNATURE_FORMAT}
            if kind == "signature_delta":
                return [self._chunk({"reasoning_details": [{**detail, "signature": delta.get("signature")}]})]
            text = delta.get("thinking") or ""
            return [self._chunk({"reasoning": text, "reasoning_details": [{**detail, "text": text}]})]
        return []

    def _on_message_delta(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        self.usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
        stop = (data.get("delta") or {}).get("stop_reason")
        if stop is None:
            return []
        finish, native = finish_of(stop)
        return [self._chunk({}, finish, native)]

    def _on_message_stop(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        self.done = True
        return [{"object": "chat.completion.chunk", "choices": [], "usage": usage_of(self.usage)}]

    def _on_error(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        err = data.get("error") or {}
        kind = ERROR_KINDS.get(str(err.get("type")), FailureKind.SERVER_ERROR)
        status = 503 if kind is FailureKind.MODEL_OVERLOADED else 429 if kind is FailureKind.RATE_LIMIT else 500
        detail = client_detail(self.provider, status, err.get("message"), kind)
        raise UpstreamFailure(f"The provider '{self.provider}' failed mid-stream{detail}",
                              kind=kind, upstream_status=status)


class AnthropicAdapter:
    def __init__(self, spec: ProviderSpec) -> None:
        assert spec.base_url is not None
        self.spec = spec
        base = spec.base_url[:-3] if spec.base_url.endswith("/v1") else spec.base_url
        self._url = base + "/v1/messages"
        headers = {"Content-Type": "application/json", "anthropic-version": API_VERSION}
        if spec.api_key:
            headers["x-api-key"] = spec.api_key.reveal()
        headers.update(spec.headers)
        self._headers = headers

    def chat_request(self, call: ChatCall) -> UpstreamRequest:
        body = to_anthropic(call.request, call.deployment.upstream_model, call.model.max_output_tokens)
        return UpstreamRequest(self._url, orjson.dumps(body), self._headers, call.stream)

    def chat_response(self, body: bytes, call: ChatCall) -> dict[str, Any]:
        try:
            msg = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise malformed("message") from None
        if not isinstance(msg, dict) or msg.get("type") != "message":
            raise malformed("message")
        return from_anthropic(msg)

    def chat_stream(self, call: ChatCall) -> AnthropicStream:
        return AnthropicStream(self.spec.name)

    def completion_request(self, call: CompletionCall) -> UpstreamRequest:
        raise InvalidRequest("Anthropic has no text completions endpoint; use /v1/chat/completions.", param="model")

    def completion_response(self, body: bytes, call: CompletionCall) -> dict[str, Any]:
        raise malformed("completion")  # never reached: completion_request refuses first

    def completion_stream(self, call: CompletionCall) -> AnthropicStream:
        return AnthropicStream(self.spec.name)

    def error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamFailure:
        parsed = json_or_none(body)
        err = parsed.get("error") if isinstance(parsed, dict) else None
        err = err if isinstance(err, dict) else {}
        kind = ERROR_KINDS.get(str(err.get("type"))) if status != 529 else FailureKind.MODEL_OVERLOADED
        return upstream_failure(status, headers, err.get("message"), kind=kind, provider=self.spec.name)


PROVIDER = ProviderType(
    name="anthropic", display_name="Anthropic",
    build=lambda spec: HttpProvider(spec, AnthropicAdapter(spec), supports_completions=False),
    supported_params=frozenset({"max_tokens", "max_completion_tokens", "stop", "tools", "tool_choice",
                                "parallel_tool_calls", "response_format", "reasoning_effort", "reasoning"}),
    presets=(Preset("anthropic", "anthropic", "Anthropic", "https://api.anthropic.com", ("ANTHROPIC_API_KEY",),
                    "ANTHROPIC_BASE_URL", "anthropic", vision_prefixes=("claude-",), model_filter=r"^claude-",
                    family_aliases=(("claude-3-opus", r"^claude-opus-[\d-]+$"),
                                    ("claude-3-sonnet", r"^claude-sonnet-[\d-]+$"),
                                    ("claude-3-haiku-latest", r"^claude-haiku-[\d-]+$"))),),
)
