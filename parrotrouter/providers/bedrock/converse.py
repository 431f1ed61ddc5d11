"""OpenAI chat to Bedrock's Converse shapes and back (pure functions, no botocore).

The JSON here is Converse's wire form (rest-json): blobs such as image bytes travel as base64.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

import orjson

from ...errors import FailureKind, InvalidRequest, UpstreamFailure, echo
from ...protocol.chat import (
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
from ..base import client_detail, upstream_failure
from ..translate import data_url, dump_arguments, parse_arguments, reject_unsupported, thinking_budget

IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif",
                 "image/webp": "webp"}
FINISH = {"end_turn": "stop", "stop_sequence": "stop", "tool_use": "tool_calls", "max_tokens": "length",
          "model_context_window_exceeded": "length", "guardrail_intervened": "content_filter",
          "content_filtered": "content_filter"}
# Bedrock's error types (the `x-amzn-ErrorType` header, `__type`, or a stream's exception event)
# and the HTTP status each is documented with.
ERRORS: dict[str, tuple[FailureKind, int]] = {
    "ValidationException": (FailureKind.BAD_REQUEST, 400),
    "AccessDeniedException": (FailureKind.AUTH, 403),
    "UnrecognizedClientException": (FailureKind.AUTH, 403),
    "InvalidSignatureException": (FailureKind.AUTH, 403),
    "IncompleteSignatureException": (FailureKind.AUTH, 403),
    "MissingAuthenticationTokenException": (FailureKind.AUTH, 403),
    "ExpiredTokenException": (FailureKind.AUTH, 403),
    "ResourceNotFoundException": (FailureKind.NOT_FOUND, 404),
    "ModelTimeoutException": (FailureKind.TIMEOUT, 408),
    "ThrottlingException": (FailureKind.RATE_LIMIT, 429),
    "ServiceQuotaExceededException": (FailureKind.RATE_LIMIT, 429),
    "ModelNotReadyException": (FailureKind.MODEL_OVERLOADED, 429),
    "ModelErrorException": (FailureKind.SERVER_ERROR, 424),
    "ModelStreamErrorException": (FailureKind.SERVER_ERROR, 424),
    "InternalServerException": (FailureKind.SERVER_ERROR, 500),
    "ServiceUnavailableException": (FailureKind.MODEL_OVERLOADED, 503),
}
TOOL_USE_ID = re.compile(r"[a-zA-Z0-9_.:-]{1,64}")  # the service model's pattern for toolUseId
TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")


# ---------------------------------------------------------------------- request
def tool_use_id(call_id: str) -> str:
    """OpenAI call ids are free-form, Bedrock's toolUseId is not: an id outside its pattern is
    replaced by a digest, the same for the call and for its result."""
    if TOOL_USE_ID.fullmatch(call_id):
        return call_id
    return "tooluse_" + hashlib.sha256(call_id.encode()).hexdigest()[:40]


def _tool_name(name: str, param: str) -> str:
    if not TOOL_NAME.fullmatch(name):
        raise InvalidRequest(f"Bedrock tool names are 1-64 letters, digits, '_' or '-', not '{echo(name)}'.",
                             param=param)
    return name


def _image(part: ImagePart, i: int) -> dict[str, Any]:
    inline = data_url(part.image_url.url)
    if inline is None:
        raise InvalidRequest("Bedrock takes images as base64 data URLs (data:image/png;base64,...), not by URL.",
                             param=f"messages[{i}].content")
    mime, data = inline
    fmt = IMAGE_FORMATS.get(mime.lower())
    if fmt is None:
        raise InvalidRequest(f"Bedrock accepts PNG, JPEG, GIF and WebP images, not {echo(mime)}.",
                             param=f"messages[{i}].content")
    return {"image": {"format": fmt, "source": {"bytes": data}}}


def _user_blocks(content: Any, i: int) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    blocks = []
    for part in content:
        if isinstance(part, TextPart):
            if part.text:  # Bedrock refuses blank text blocks
                blocks.append({"text": part.text})
        elif isinstance(part, ImagePart):
            blocks.append(_image(part, i))
        else:
            raise InvalidRequest("Bedrock accepts text and image content parts.", param=f"messages[{i}].content")
    return blocks


def _assistant_blocks(m: AssistantMessage, i: int) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    text = message_text(m.content) or (m.refusal or "")
    if text:
        blocks.append({"text": text})
    for call in m.tool_calls or ():
        fn = getattr(call, "function", None)
        if fn is None:
            raise InvalidRequest("Bedrock supports function tool calls only.", param=f"messages[{i}].tool_calls")
        blocks.append({"toolUse": {"toolUseId": tool_use_id(call.id),
                                   "name": _tool_name(fn.name, f"messages[{i}].tool_calls"),
                                   "input": parse_arguments(fn.arguments, f"messages[{i}]")}})
    return blocks


def messages(request: ChatCompletionRequest) -> list[dict[str, Any]]:
    """Converse messages: user and assistant turns, alternating (same-role turns merged), tool
    results as `toolResult` blocks of a user turn."""
    turns: list[dict[str, Any]] = []
    for i, m in enumerate(request.messages):
        if isinstance(m, SystemMessage | DeveloperMessage):
            continue
        if isinstance(m, UserMessage):
            role, blocks = "user", _user_blocks(m.content, i)
        elif isinstance(m, AssistantMessage):
            role, blocks = "assistant", _assistant_blocks(m, i)
        elif isinstance(m, ToolMessage):
            text = message_text(m.content)
            role, blocks = "user", [{"toolResult": {"toolUseId": tool_use_id(m.tool_call_id),
                                                    "content": [{"text": text}] if text else []}}]
        else:
            assert isinstance(m, FunctionMessage)
            raise InvalidRequest("Bedrock needs tool messages with a tool_call_id, not the deprecated "
                                 "function messages.", param=f"messages[{i}]")
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    if not turns:
        raise InvalidRequest("Bedrock needs at least one non-empty user or assistant message besides system ones.",
                             param="messages")
    return turns


def _tool_config(request: ChatCompletionRequest) -> dict[str, Any] | None:
    if request.functions:
        raise InvalidRequest("Bedrock takes 'tools', not the deprecated 'functions'.", param="functions")
    choice = request.tool_choice
    if not request.tools or choice == "none":  # Converse has no "none": the tools are left out
        return None
    tools = []
    for n, tool in enumerate(request.tools):
        if not isinstance(tool, FunctionTool):
            raise InvalidRequest("Bedrock supports function tools only.", param=f"tools[{n}]")
        fn = tool.function
        spec: dict[str, Any] = {"name": _tool_name(fn.name, f"tools[{n}].function.name"),
                                "inputSchema": {"json": fn.parameters or {"type": "object", "properties": {}}}}
        if fn.description:
            spec["description"] = fn.description
        tools.append({"toolSpec": spec})
    config: dict[str, Any] = {"tools": tools}
    if choice == "auto":
        config["toolChoice"] = {"auto": {}}
    elif choice == "required":
        config["toolChoice"] = {"any": {}}
    elif isinstance(choice, NamedToolChoice):
        config["toolChoice"] = {"tool": {"name": _tool_name(choice.function.name, "tool_choice")}}
    elif choice is not None:
        raise InvalidRequest("This tool_choice is not supported by Bedrock.", param="tool_choice")
    return config


def _output_config(request: ChatCompletionRequest) -> dict[str, Any] | None:
    fmt = request.response_format
    if isinstance(fmt, JsonSchemaFormat):
        spec = fmt.json_schema
        schema: dict[str, Any] = {"schema": orjson.dumps(spec.schema or {"type": "object"}).decode(),
                                  "name": spec.name}
        if spec.description:
            schema["description"] = spec.description
    elif isinstance(fmt, JsonObjectFormat):
        schema = {"schema": '{"type":"object"}', "name": "json_object"}
    else:
        return None
    return {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": schema}}}


def to_converse(request: ChatCompletionRequest, default_max_tokens: int | None) -> dict[str, Any]:
    """The Converse request body (the model id travels in the path)."""
    reject_unsupported(request, "bedrock")
    if thinking_budget(request) is not None:
        raise InvalidRequest("Reasoning settings are not supported by the provider 'bedrock'.",
                             param="reasoning_effort" if request.reasoning_effort else "reasoning")
    body: dict[str, Any] = {"messages": messages(request)}
    system = [{"text": text} for m in request.messages if isinstance(m, SystemMessage | DeveloperMessage)
              if (text := message_text(m.content))]
    if system:
        body["system"] = system
    config: dict[str, Any] = {}
    limit = request.output_limit or default_max_tokens
    if limit:
        config["maxTokens"] = limit
    if request.temperature is not None:
        if request.temperature > 1:
            raise InvalidRequest("Bedrock accepts a temperature between 0 and 1.", param="temperature")
        config["temperature"] = request.temperature
    if request.top_p is not None:
        config["topP"] = request.top_p
    if stops := [s for s in request.stop_list if s]:
        config["stopSequences"] = stops
    if config:
        body["inferenceConfig"] = config
    if (tools := _tool_config(request)) is not None:
        body["toolConfig"] = tools
    if (output := _output_config(request)) is not None:
        body["outputConfig"] = output
    return body


# ---------------------------------------------------------------------- response
def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53 else 0


def usage_of(usage: Any) -> dict[str, Any] | None:
    """Bedrock counts cache reads and writes apart from `inputTokens`; OpenAI's prompt_tokens
    includes them, with the cached part in `prompt_tokens_details`. None when it sent no counts:
    the gateway then counts the tokens itself (never free)."""
    if not isinstance(usage, dict) or not ({"inputTokens", "outputTokens"} & usage.keys()):
        return None
    read = _count(usage.get("cacheReadInputTokens"))
    write = _count(usage.get("cacheWriteInputTokens"))
    prompt = _count(usage.get("inputTokens")) + read + write
    completion = _count(usage.get("outputTokens"))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": read, "cache_write_tokens": write}}


def finish_of(stop_reason: str | None) -> tuple[str, str | None]:
    return FINISH.get(stop_reason or "", "stop"), stop_reason


def from_converse(resp: Mapping[str, Any]) -> dict[str, Any]:
    """A Converse response as an OpenAI `chat.completion` (without id, created and model)."""
    msg = (resp.get("output") or {}).get("message")
    if not isinstance(msg, dict) or not isinstance(msg.get("content"), list):
        raise ValueError("no output.message.content")
    text: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in msg["content"]:
        if "text" in block:
            text.append(block["text"] or "")
        elif "toolUse" in block:
            use = block["toolUse"]
            calls.append({"id": use["toolUseId"], "type": "function",
                          "function": {"name": use["name"], "arguments": dump_arguments(use.get("input"))}})
        elif "reasoningContent" in block:
            reasoning.append(((block["reasoningContent"] or {}).get("reasoningText") or {}).get("text") or "")
    finish, native = finish_of(resp.get("stopReason"))
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not calls else None,
                               "refusal": None}
    if calls:
        message["tool_calls"] = calls
    if reasoning:
        message["reasoning"] = "".join(reasoning)
    out: dict[str, Any] = {"object": "chat.completion",
                           "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish,
                                        "native_finish_reason": native}]}
    if (usage := usage_of(resp.get("usage"))) is not None:
        out["usage"] = usage
    return out


# ---------------------------------------------------------------------- errors
def error_type(headers: Mapping[str, str], parsed: Any) -> str:
    """The error's type: `x-amzn-ErrorType` (e.g. `ValidationException:http://...`), else the
    body's `__type` (e.g. `com.amazon.coral.service#ValidationException`) or `code`."""
    name = headers.get("x-amzn-ErrorType") or ""
    if not name and isinstance(parsed, dict):
        name = str(parsed.get("__type") or parsed.get("code") or "")
    return name.split(":", 1)[0].rsplit("#", 1)[-1]


def _known(name: str) -> tuple[FailureKind | None, int]:
    name = name[:1].upper() + name[1:]  # stream events name them `throttlingException`
    return ERRORS.get(name, (None, 500))


def failure(name: str, status: int, headers: Mapping[str, str], message: Any, provider: str) -> UpstreamFailure:
    """An HTTP error answer, by its error type (else by its status)."""
    return upstream_failure(status, headers, message, kind=_known(name)[0], provider=provider)


def stream_failure(name: str, message: Any, provider: str) -> UpstreamFailure:
    """An exception event in a ConverseStream (after HTTP 200), with its type's documented status."""
    kind, status = _known(name)
    kind = kind or FailureKind.SERVER_ERROR
    detail = client_detail(provider, status, message, kind)
    return UpstreamFailure(f"The provider '{provider}' failed mid-stream{detail}", kind=kind, upstream_status=status)
