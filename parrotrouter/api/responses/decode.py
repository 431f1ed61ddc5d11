"""A Responses request as the canonical chat request: `input` items (after the stored conversation
of `previous_response_id`) become chat messages, function and custom tools become chat function
tools, `text.format` becomes `response_format`.

Custom (freeform) tools — Codex's `apply_patch` — become function tools taking one string,
`input`, so every chat model can call them; `encode` turns such calls back into
`custom_tool_call` items. Reasoning items carry a model's own state and are not sent to another
model. What chat cannot express (hosted tools, their calls, item references, files by URL) is
`native_only`: served by a deployment that speaks the Responses API natively, else refused.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from ...errors import InvalidRequest, echo
from ...protocol.chat import MAX_TOOLS
from ...protocol.validation import check_storable, convert
from . import encode
from . import protocol as p

INPUT_PARAM = "input"


@dataclasses.dataclass(slots=True)
class Decoded:
    """The request's own input items (normalised dicts, as stored and listed), the chat body they
    translate to (history first), the custom tools' names, and why only native serving will do."""

    request: p.ResponsesRequest
    items: list[dict[str, Any]]
    chat: dict[str, Any]
    tools: encode.ToolNames
    native_only: str | None


def convert_at(value: Any, type_: Any, where: str) -> Any:
    """`convert`, naming the parameter from the request's root (`input[3].content[0].text`)."""
    try:
        return convert(value, type_)
    except InvalidRequest as exc:
        full = f"{where}.{exc.param}" if exc.param else where
        message = exc.message.replace(f"'{exc.param}'", f"'{full}'", 1) if exc.param else \
            exc.message.replace("the request", f"'{where}'", 1)
        raise InvalidRequest(message, param=full) from None


def input_items(request: p.ResponsesRequest) -> list[dict[str, Any]]:
    """`input` as a list of item dicts (a string is one user message), each with its type."""
    raw = request.input
    if raw is None:
        return []
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": raw}]}]
    items = []
    for i, item in enumerate(raw):
        kind = p.item_type(item)
        if kind is None:
            raise InvalidRequest(f"'input[{i}]' must be an object with a 'type' (or a 'role').",
                                 param=f"input[{i}]")
        items.append({**item, "type": kind})
    return items


def parse_items(items: list[dict[str, Any]], where: str = INPUT_PARAM) -> tuple[list[p.InputItem], str | None]:
    """The items chat can express, typed, and the first reason some item needs native serving.
    In the stored conversation (`previous_response_id`), an earlier model's hosted tool calls are
    left out: their results are in its answer."""
    typed: list[p.InputItem] = []
    native_only = None
    for i, item in enumerate(items):
        kind = item["type"]
        if kind not in p.TRANSLATED_ITEMS:
            if where == INPUT_PARAM:
                native_only = native_only or f"Input items of type '{echo(kind, 40)}' ({where}[{i}])"
            continue
        typed.append(convert_at(item, p.InputItem, f"{where}[{i}]"))
    return typed, native_only


class _Messages:
    """Chat messages built item by item: consecutive calls join one assistant message."""

    def __init__(self) -> None:
        self.out: list[dict[str, Any]] = []
        self.native_only: str | None = None
        self.details: list[dict[str, Any]] = []  # reasoning state for the next assistant message

    def _assistant(self) -> dict[str, Any]:
        last = self.out[-1] if self.out else None
        if last is None or last["role"] != "assistant":
            return self._append({"role": "assistant", "content": None})
        if self.details:
            last["reasoning_details"], self.details = [*last.get("reasoning_details", ()), *self.details], []
        return last

    def _append(self, message: dict[str, Any]) -> dict[str, Any]:
        if message["role"] == "assistant" and self.details:
            message["reasoning_details"], self.details = self.details, []
        self.out.append(message)
        return message

    def add(self, item: p.InputItem) -> None:
        if isinstance(item, p.MessageItem):
            self._message(item)
        elif isinstance(item, p.FunctionCallItem | p.CustomToolCallItem):
            name, arguments = item.name, orjson.dumps({"input": item.input}).decode() \
                if isinstance(item, p.CustomToolCallItem) else item.arguments
            if isinstance(item, p.FunctionCallItem) and item.namespace:
                name = encode.chat_name(item.namespace, item.name)
            self._assistant().setdefault("tool_calls", []).append(
                {"id": item.call_id, "type": "function", "function": {"name": name, "arguments": arguments}})
        elif isinstance(item, p.FunctionCallOutputItem | p.CustomToolCallOutputItem):
            self._tool_output(item.call_id, item.output)
        elif (details := encode.unpack_details(item.encrypted_content)) is not None:
            self.details += details  # the reasoning state a chat model gave (Claude's signatures)
        # any other reasoning: a model's own state, never sent to another model

    def _message(self, item: p.MessageItem) -> None:
        if item.role == "assistant":
            text, refusal = _assistant_text(item.content)
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if refusal:
                message["refusal"] = refusal
            self._append(message)
        elif item.role in ("system", "developer"):
            self.out.append({"role": "system", "content": _plain_text(item.content, "system")})
        else:
            self.out.append({"role": "user", "content": self._user_content(item.content)})

    def _user_content(self, content: str | list[p.ContentPart]) -> str | list[dict[str, Any]]:
        if isinstance(content, str):
            return content
        parts: list[dict[str, Any]] = []
        for part in content:
            if isinstance(part, p.InputText | p.OutputText):
                parts.append({"type": "text", "text": part.text})
            elif isinstance(part, p.InputImage):
                if part.image_url is None:
                    self.native_only = self.native_only or "Images given by 'file_id'"
                    continue
                image: dict[str, Any] = {"url": part.image_url}
                if part.detail is not None:
                    image["detail"] = part.detail
                parts.append({"type": "image_url", "image_url": image})
            elif isinstance(part, p.InputFile):
                if part.file_url is not None or (part.file_data is None and part.file_id is None):
                    self.native_only = self.native_only or "Files given by 'file_url'"
                    continue
                file = {k: v for k in ("file_data", "file_id", "filename") if (v := getattr(part, k)) is not None}
                parts.append({"type": "file", "file": file})
            elif isinstance(part, p.InputAudio):
                parts.append({"type": "input_audio", "input_audio": {"data": part.input_audio.data,
                                                                     "format": part.input_audio.format}})
            else:  # a refusal quoted back in a user message: its text
                parts.append({"type": "text", "text": part.refusal})
        return parts

    def _tool_output(self, call_id: str, output: str | list[p.ToolOutputPart]) -> None:
        if isinstance(output, str):
            self.out.append({"role": "tool", "tool_call_id": call_id, "content": output})
            return
        text = "".join(part.text for part in output if isinstance(part, p.InputText))
        self.out.append({"role": "tool", "tool_call_id": call_id, "content": text})
        media = [part for part in output if not isinstance(part, p.InputText)]
        if media:  # chat tool messages hold text only: the images and files follow as a user turn
            self.out.append({"role": "user", "content": self._user_content(list(media))})


def _plain_text(content: str | list[p.ContentPart], role: str) -> str:
    if isinstance(content, str):
        return content
    texts = []
    for part in content:
        if not isinstance(part, p.InputText | p.OutputText):
            raise InvalidRequest(f"A {role} message may hold text only.", param=INPUT_PARAM)
        texts.append(part.text)
    return "".join(texts)


def _assistant_text(content: str | list[p.ContentPart]) -> tuple[str, str]:
    if isinstance(content, str):
        return content, ""
    text = "".join(part.text for part in content if isinstance(part, p.OutputText | p.InputText))
    refusal = "".join(part.refusal for part in content if isinstance(part, p.Refusal))
    return text, refusal


def _tools(raw: list[dict[str, Any]] | None) -> tuple[list[dict[str, Any]], encode.ToolNames, str | None]:
    """Chat tools, how their names map back, and the first tool only native serving takes."""
    tools: list[dict[str, Any]] = []
    custom: set[str] = set()
    namespaced: dict[str, tuple[str, str]] = {}
    native_only = None
    for i, tool in enumerate(raw or ()):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if not isinstance(kind, str):
            raise InvalidRequest(f"'tools[{i}]' must be an object with a 'type'.", param=f"tools[{i}]")
        if kind in p.OPTIONAL_TOOLS or kind in p.CLIENT_ONLY_TOOLS:
            continue
        if kind in p.PER_CALL_TOOLS:
            raise InvalidRequest(f"Tools of type '{kind}' (tools[{i}]) are billed by the provider per call, "
                                 "which this gateway does not bill: they are not offered.", param=f"tools[{i}]")
        if kind not in p.TRANSLATED_TOOLS:
            native_only = native_only or f"Tools of type '{echo(kind, 40)}' (tools[{i}])"
            continue
        typed: p.ToolDef = convert_at(tool, p.ToolDef, f"tools[{i}]")
        if isinstance(typed, p.CustomToolDef):
            custom.add(typed.name)
            tools.append({"type": "function", "function": custom_as_function(typed)})
        elif isinstance(typed, p.NamespaceToolDef):
            for inner in typed.tools:
                name = encode.chat_name(typed.name, inner.name)
                namespaced[name] = (typed.name, inner.name)
                tools.append({"type": "function", "function": _function(inner, name)})
        else:
            tools.append({"type": "function", "function": _function(typed, typed.name)})
    if len(tools) > MAX_TOOLS:
        raise InvalidRequest(f"At most {MAX_TOOLS} tools (functions of namespaces included).", param="tools")
    return tools, encode.ToolNames(frozenset(custom), namespaced), native_only


def _function(tool: p.FunctionToolDef, name: str) -> dict[str, Any]:
    function: dict[str, Any] = {"name": name, "parameters": tool.parameters or {"type": "object", "properties": {}}}
    if tool.description is not None:
        function["description"] = tool.description
    if tool.strict is not None:
        function["strict"] = tool.strict
    return function


def custom_as_function(tool: p.CustomToolDef) -> dict[str, Any]:
    """A freeform tool as a function taking its raw input as one string."""
    description = tool.description or ""
    fmt = tool.format
    if fmt is not None and fmt.type == "grammar" and fmt.definition:
        description += (f"\n\nThe input must follow this {fmt.syntax or 'formal'} grammar:\n{fmt.definition}")
    return {"name": tool.name, "description": description.strip() or f"The tool {tool.name}.",
            "parameters": {"type": "object", "additionalProperties": False, "required": ["input"],
                           "properties": {"input": {"type": "string",
                                                    "description": "The tool's raw input, as its description "
                                                                   "says."}}}}


def _tool_choice(choice: str | dict[str, Any] | None) -> tuple[Any, str | None]:
    if choice is None or isinstance(choice, str):
        return choice, None
    kind = choice.get("type")
    if kind in ("function", "custom"):
        named: p.NamedTool = convert_at(choice, p.NamedTool, "tool_choice")
        return {"type": "function", "function": {"name": named.name}}, None
    if kind == "allowed_tools":
        allowed: p.AllowedTools = convert_at(choice, p.AllowedTools, "tool_choice")
        names = [t.get("name") for t in allowed.tools if t.get("type") in ("function", "custom")]
        if len(names) != len(allowed.tools) or not all(isinstance(n, str) for n in names):
            return None, "'tool_choice' of hosted tools"
        return {"type": "allowed_tools", "allowed_tools": {
            "mode": allowed.mode, "tools": [{"type": "function", "function": {"name": n}} for n in names]}}, None
    if kind in p.PER_CALL_TOOLS:
        raise InvalidRequest(f"'tool_choice' of type '{kind}': tools billed by the provider per call are not "
                             "offered.", param="tool_choice")
    return None, f"'tool_choice' of type '{echo(kind, 40)}'"


def _response_format(text: p.TextConfig | None) -> dict[str, Any] | None:
    fmt = text.format if text is not None else None
    if isinstance(fmt, p.ResponsesJsonObject):
        return {"type": "json_object"}
    if isinstance(fmt, p.ResponsesJsonSchema):
        spec: dict[str, Any] = {"name": fmt.name, "schema": fmt.schema}
        if fmt.description is not None:
            spec["description"] = fmt.description
        if fmt.strict is not None:
            spec["strict"] = fmt.strict
        return {"type": "json_schema", "json_schema": spec}
    return None


MAX_DEPTH = 100  # JSON nesting of a request (orjson writes at most 255 levels; real schemas use ~10)


def check_depth(raw: dict[str, Any]) -> None:
    """400 for a body nested deeper than MAX_DEPTH (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(raw, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidRequest(f"The request is nested more than {MAX_DEPTH} levels deep.")
        children = value.values() if isinstance(value, dict) else value
        stack += [(child, depth + 1) for child in children if isinstance(child, dict | list)]


_IMAGES = frozenset({"input_image", "computer_screenshot"})


def native_extras(request: p.ResponsesRequest, history: list[dict[str, Any]],
                  items: list[dict[str, Any]]) -> tuple[list[str], str]:
    """What a native upstream reads beyond the chat translation: the key-permission features it
    uses (hosted tools, images inside items chat cannot express) and the JSON text of the items
    and tools the translation leaves out (counted as prompt: reservations and billing without the
    upstream's usage)."""
    features = ["tools"] if request.tools else []
    stack: list[Any] = [*history, *items]  # a conversation continued by another key of the account too
    while stack:  # nesting is bounded by check_depth
        value = stack.pop()
        if isinstance(value, dict):
            if value.get("type") in _IMAGES:
                features.append("vision")
                break
            stack += value.values()
        elif isinstance(value, list):
            stack += value
    left_out = [item for item in (*history, *items) if item.get("type") not in p.TRANSLATED_ITEMS]
    left_out += [tool for tool in request.tools or () if isinstance(tool, dict)
                 and tool.get("type") not in p.TRANSLATED_TOOLS]
    return features, orjson.dumps(left_out).decode() if left_out else ""


def check_request(request: p.ResponsesRequest) -> None:
    """What this gateway does not offer, refused by name (never silently ignored)."""
    if request.background:
        raise InvalidRequest("Background responses are not supported by this gateway.", param="background")
    if request.conversation is not None:
        raise InvalidRequest("'conversation' is not supported by this gateway; continue a conversation with "
                             "'previous_response_id'.", param="conversation")
    if request.prompt is not None:
        raise InvalidRequest("Stored prompts ('prompt') are not supported by this gateway.", param="prompt")
    if request.stream_options is not None and not request.stream:
        raise InvalidRequest("'stream_options' is only allowed when 'stream' is true.", param="stream_options")


def decode(request: p.ResponsesRequest, history: list[dict[str, Any]]) -> Decoded:
    """The request (checked by `check_request`) and its chat translation; `history`: the stored
    conversation of `previous_response_id`, oldest first."""
    items = input_items(request)
    if not items and not history:
        raise InvalidRequest("Missing required parameter 'input'.", param=INPUT_PARAM)
    check_storable(items, INPUT_PARAM)  # kept in the state store: no NUL, valid Unicode
    past, native_past = parse_items(history, "previous_response_id")
    typed, native_input = parse_items(items)
    messages = _Messages()
    if request.instructions:
        messages.out.append({"role": "system", "content": request.instructions})
    for item in (*past, *typed):
        messages.add(item)
    tools, names, native_tools = _tools(request.tools)
    choice, native_choice = _tool_choice(request.tool_choice)
    native_only = native_input or native_past or native_tools or native_choice or messages.native_only
    if not messages.out:
        if native_only is None:
            raise InvalidRequest("The input holds nothing a model can answer.", param=INPUT_PARAM)
        messages.out.append({"role": "user", "content": ""})  # counted only: a native upstream gets the items
    chat = _chat_body(request, messages.out, tools, choice)
    return Decoded(request, items, chat, names, native_only)


def _chat_body(request: p.ResponsesRequest, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
               choice: Any) -> dict[str, Any]:
    chat: dict[str, Any] = {"model": request.model, "messages": messages}
    if tools:
        chat["tools"] = tools
        if choice is not None:
            chat["tool_choice"] = choice
        if request.parallel_tool_calls is not None:
            chat["parallel_tool_calls"] = request.parallel_tool_calls
    elif choice == "none":
        chat["tool_choice"] = choice
    if (fmt := _response_format(request.text)) is not None:
        chat["response_format"] = fmt
    if request.text is not None and request.text.verbosity is not None:
        chat["verbosity"] = request.text.verbosity
    if request.reasoning is not None and request.reasoning.effort is not None:
        chat["reasoning_effort"] = request.reasoning.effort
    if request.max_output_tokens is not None:
        chat["max_completion_tokens"] = request.max_output_tokens
    for name in ("temperature", "top_p", "user", "safety_identifier", "prompt_cache_key", "service_tier"):
        if (value := getattr(request, name)) is not None:
            chat[name] = value
    if request.stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}  # the core hands the usage over at the end
    return chat
