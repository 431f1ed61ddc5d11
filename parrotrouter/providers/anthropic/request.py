"""OpenAI chat requests as Anthropic Messages API bodies (the translated path; `native.py`
forwards Messages API bodies as they came)."""

from __future__ import annotations

from typing import Any

from ...errors import InvalidRequest, echo
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
from ..translate import data_url, parse_arguments, reject_unsupported, thinking_budget

DEFAULT_MAX_TOKENS = 4096
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})


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

