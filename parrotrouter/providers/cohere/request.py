"""Cohere v2 Chat requests from OpenAI chat requests (pure).

System/developer messages become `system` messages in place; user text and images (`image_url`,
data or web URLs, with `detail`); assistant text, tool calls (their text as `tool_plan`, the way
Cohere writes it) and reasoning (a `thinking` content item); tool results as `tool` messages.
Function tools with their JSON schema (`strict` on any tool: `strict_tools`); `tool_choice`
none/required as NONE/REQUIRED; a named choice (or `allowed_tools`) is emulated by sending only
the chosen tools — with REQUIRED, the model must call one of them. `response_format`
json_object / json_schema as `json_object` (with `json_schema`); `stop` as `stop_sequences`,
`top_p` as `p` (held in Cohere's 0.01..0.99), `top_k` as `k`, seed, penalties (Cohere takes 0..1),
reasoning as `thinking`. Refused (a 400 naming the parameter): n > 1, logprobs, logit_bias,
audio and file parts, parallel_tool_calls=false, legacy functions, response_format with tools.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...errors import InvalidRequest, echo
from ...protocol.chat import (
    AllowedToolsChoice,
    AssistantMessage,
    ChatCompletionRequest,
    DeveloperMessage,
    FunctionTool,
    FunctionToolCall,
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
from ..translate import data_url, dump_arguments, parse_arguments, reject_unsupported, thinking_budget

P_MIN, P_MAX = 0.01, 0.99  # Cohere's documented range of `p`
K_MAX = 500
# The price table names these models by family; Cohere's API knows them by the dated ids the
# table prices under those names (sent instead, and accepted as aliases).
DATED = {"command-a": "command-a-03-2025", "command-r": "command-r-08-2024",
         "command-r-plus": "command-r-plus-08-2024", "command-r7b": "command-r7b-12-2024"}


def _user_content(content: Any, i: int) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, TextPart):
            parts.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            data_url(part.image_url.url)  # a data URL must hold base64 (a 400 here, not upstream)
            image: dict[str, Any] = {"url": part.image_url.url}
            if part.image_url.detail:
                image["detail"] = part.image_url.detail
            parts.append({"type": "image_url", "image_url": image})
        else:
            raise InvalidRequest("Cohere accepts text and image content parts.", param=f"messages[{i}].content")
    return parts


def _assistant(m: AssistantMessage, i: int) -> dict[str, Any] | None:
    if m.function_call is not None:
        raise InvalidRequest("Cohere takes tool calls, not legacy function calls.",
                             param=f"messages[{i}].function_call")
    text = message_text(m.content) or (m.refusal or "")
    out: dict[str, Any] = {"role": "assistant"}
    calls = []
    for call in m.tool_calls or ():
        if not isinstance(call, FunctionToolCall):
            raise InvalidRequest("Cohere supports function tool calls only.", param=f"messages[{i}].tool_calls")
        arguments = dump_arguments(parse_arguments(call.function.arguments, f"messages[{i}]"))
        calls.append({"id": call.id, "type": "function",
                      "function": {"name": call.function.name, "arguments": arguments}})
    content: list[dict[str, Any]] = []
    if m.reasoning:
        content.append({"type": "thinking", "thinking": m.reasoning})
    if calls:
        out["tool_calls"] = calls
        if text:  # the text that comes with tool calls is what Cohere calls the tool plan
            out["tool_plan"] = text
    elif text:
        content.append({"type": "text", "text": text})
    if content:
        out["content"] = content if len(content) > 1 or content[0]["type"] != "text" else text
    return out if len(out) > 1 else None


def _messages(request: ChatCompletionRequest) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, m in enumerate(request.messages):
        if isinstance(m, SystemMessage | DeveloperMessage):
            out.append({"role": "system", "content": message_text(m.content)})
        elif isinstance(m, UserMessage):
            out.append({"role": "user", "content": _user_content(m.content, i)})
        elif isinstance(m, AssistantMessage):
            if (turn := _assistant(m, i)) is not None:
                out.append(turn)
        elif isinstance(m, ToolMessage):
            out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": message_text(m.content)})
        else:
            raise InvalidRequest("Cohere takes tool messages, not legacy function messages.", param=f"messages[{i}]")
    if not out:
        raise InvalidRequest("Cohere needs at least one message with content.", param="messages")
    return out


def _chosen_tools(request: ChatCompletionRequest) -> tuple[set[str] | None, str | None]:
    """(names of the tools to send, None: all; Cohere's tool_choice, None: the model decides)."""
    choice = request.tool_choice
    if choice in (None, "auto"):
        return None, None
    if choice in ("none", "required"):
        return None, str(choice).upper()
    if isinstance(choice, NamedToolChoice):
        return {choice.function.name}, "REQUIRED"
    if isinstance(choice, AllowedToolsChoice):
        spec = choice.allowed_tools
        mode, tools = spec.get("mode", "auto"), spec.get("tools")
        if mode not in ("auto", "required") or not isinstance(tools, list) or not tools:
            raise InvalidRequest("allowed_tools needs a mode (auto or required) and a list of tools.",
                                 param="tool_choice")
        functions = [t.get("function") if isinstance(t, dict) else None for t in tools]
        names = [f.get("name") if isinstance(f, dict) else None for f in functions]  # any JSON: not hashed yet
        if not all(isinstance(n, str) for n in names):
            raise InvalidRequest("Cohere can only be limited to function tools, by name.", param="tool_choice")
        return {n for n in names if isinstance(n, str)}, "REQUIRED" if mode == "required" else None
    raise InvalidRequest("Cohere supports function tools only.", param="tool_choice")


def _tools(request: ChatCompletionRequest, body: dict[str, Any]) -> None:
    if request.functions:
        raise InvalidRequest("Cohere takes `tools`, not the legacy `functions`.", param="functions")
    if not request.tools:
        if request.tool_choice not in (None, "auto", "none"):
            raise InvalidRequest("A tool_choice that calls a tool needs tools.", param="tool_choice")
        return
    if request.parallel_tool_calls is False:
        raise InvalidRequest("Cohere cannot be kept from making parallel tool calls.", param="parallel_tool_calls")
    tools: list[dict[str, Any]] = []
    for i, tool in enumerate(request.tools):
        if not isinstance(tool, FunctionTool):
            raise InvalidRequest("Cohere supports function tools only.", param=f"tools[{i}]")
        fn = tool.function
        entry: dict[str, Any] = {"name": fn.name, "parameters": fn.parameters or {"type": "object", "properties": {}}}
        if fn.description:
            entry["description"] = fn.description
        tools.append({"type": "function", "function": entry})
    chosen, mode = _chosen_tools(request)
    if chosen is not None:
        unknown = chosen - {t["function"]["name"] for t in tools}
        if unknown:
            raise InvalidRequest(f"tool_choice names '{echo(sorted(unknown)[0])}', which is not among the tools.",
                                 param="tool_choice")
        tools = [t for t in tools if t["function"]["name"] in chosen]
    body["tools"] = tools
    if mode is not None:
        body["tool_choice"] = mode
    if any(isinstance(t, FunctionTool) and t.function.strict for t in request.tools):
        body["strict_tools"] = True


def _sampling(request: ChatCompletionRequest, raw: Mapping[str, Any], body: dict[str, Any]) -> None:
    if request.logit_bias:
        raise InvalidRequest("'logit_bias' is not supported by the provider 'cohere'.", param="logit_bias")
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["p"] = min(max(request.top_p, P_MIN), P_MAX)
    k = raw.get("top_k")
    if k is not None:
        if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= K_MAX:
            raise InvalidRequest(f"Cohere's top_k is an integer from 0 to {K_MAX}.", param="top_k")
        body["k"] = k
    for name in ("frequency_penalty", "presence_penalty"):
        value = getattr(request, name)
        if value is not None:
            if not 0.0 <= value <= 1.0:
                raise InvalidRequest(f"Cohere's {name} ranges from 0 to 1.", param=name)
            body[name] = value
    if request.seed is not None:
        body["seed"] = request.seed


def _reasoning(request: ChatCompletionRequest, body: dict[str, Any]) -> None:
    reasoning = request.reasoning or {}
    if (request.reasoning_effort == "none" or reasoning.get("enabled") is False
            or reasoning.get("effort") == "none"):
        body["thinking"] = {"type": "disabled"}
    elif (budget := thinking_budget(request)) is not None:
        body["thinking"] = {"type": "enabled", "token_budget": budget}


def to_cohere(request: ChatCompletionRequest, raw: Mapping[str, Any], model: str,
              default_max_tokens: int | None) -> dict[str, Any]:
    """The /v2/chat body for an OpenAI chat request."""
    reject_unsupported(request, "cohere")
    body: dict[str, Any] = {"model": DATED.get(model, model), "messages": _messages(request)}
    _tools(request, body)
    fmt = request.response_format
    if isinstance(fmt, JsonObjectFormat | JsonSchemaFormat):
        if request.tools:
            raise InvalidRequest("Cohere does not take response_format together with tools.", param="response_format")
        body["response_format"] = {"type": "json_object"}
        if isinstance(fmt, JsonSchemaFormat):
            body["response_format"]["json_schema"] = fmt.json_schema.schema or {"type": "object"}
    limit = request.output_limit or default_max_tokens
    if limit:
        body["max_tokens"] = limit
    if request.stop_list:
        body["stop_sequences"] = request.stop_list
    _sampling(request, raw, body)
    _reasoning(request, body)
    if request.stream:
        body["stream"] = True
    return body
