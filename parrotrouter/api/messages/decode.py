"""A Messages API request as the canonical chat request (package docstring: what each field
becomes, and what other models do not get).

`to_chat` builds the chat body twice over: `canonical` keeps what providers translating from the
chat form can still use (thinking signatures as `reasoning_details`, the thinking budget as
`reasoning`), `raw` is a plain OpenAI chat body, what OpenAI-compatible upstreams receive."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from ...errors import InvalidRequest, echo
from ...protocol.chat import ChatCompletionRequest
from ...protocol.validation import check_storable, convert
from .blocks import block, check_depth, checked
from .protocol import (
    MAX_BODY_DEPTH,
    THINKING_TYPES,
    Base64Source,
    Blocks,
    Content,
    ContentSource,
    CountTokensRequest,
    CustomTool,
    DocumentBlock,
    FileSource,
    ImageBlock,
    MessagesRequest,
    PlainTextSource,
    RedactedThinkingBlock,
    TextBlock,
    Thinking,
    ThinkingAdaptive,
    ThinkingBlock,
    ThinkingEnabled,
    ToolChoiceAny,
    ToolChoiceNone,
    ToolChoiceTool,
    ToolResultBlock,
    ToolUseBlock,
    UrlSource,
)

SIGNATURE_FORMAT = "anthropic-claude-v1"  # as providers/anthropic writes reasoning_details
MAX_CHAT_STOPS = 4  # OpenAI's limit: further stop sequences go to Anthropic only
Part = dict[str, Any]
ChatMessage = dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class Translated:
    canonical: ChatCompletionRequest
    raw: dict[str, Any]  # a valid OpenAI chat body
    # No user or assistant turn is left: every block is one only Anthropic reads (a Files API
    # image, a document by URL, ...). The chat body has an empty user turn, for accounting only:
    # no translated model may serve it.
    native_only: bool = False


def to_chat(req: MessagesRequest | CountTokensRequest, output_cap: int | None = None) -> Translated:
    """`output_cap`: the requested model's most output tokens, where the catalog knows it. A
    client's larger `max_tokens` (the AI SDK asks 64,000 of every Claude model) is capped to it
    for other models, which would refuse it; Anthropic gets the client's value."""
    messages = _system(req.system)
    for i, message in enumerate(req.messages):
        where = f"messages[{i}]"
        if message.role == "assistant":
            messages.append(_assistant(message.content, where))
        elif message.role == "system":
            messages.append({"role": "system", "content": _text_of(message.content, where)})
        else:
            messages += _user(message.content, where)
    native_only = all(m["role"] == "system" for m in messages)
    if native_only:
        messages.append({"role": "user", "content": ""})
    body: dict[str, Any] = {"model": req.model, "messages": messages}
    tools = _tools(req)
    if tools:
        body["tools"] = tools
        _tool_choice(req, body)
    fmt = req.output_config.format if req.output_config is not None and req.output_config.format else None
    fmt = fmt or req.output_format
    if fmt is not None:
        check_depth(fmt.schema, "output_config.format.schema")
        body["response_format"] = {"type": "json_schema", "json_schema": {"name": "output", "schema": fmt.schema}}
    if isinstance(req, MessagesRequest):
        _generation(req, body, output_cap)
    canonical = dict(body)
    canonical["messages"] = messages
    reasoning = _reasoning(req)
    if reasoning is not None:
        canonical["reasoning"] = reasoning
    body["messages"] = [_plain(m) for m in messages]
    return Translated(_convert(canonical), body, native_only)


# Anthropic's server tools it bills per use on top of the tokens (web search: $10 per 1,000
# searches; code execution: container hours): the ledger prices tokens only, so they are refused
# rather than served unbilled. Tools billed by their tokens alone (web fetch, ...) go through.
PER_USE_TOOLS = ("web_search_", "code_execution_")


def check_tools_billable(req: MessagesRequest) -> None:
    """400 for a server tool Anthropic bills per use (`PER_USE_TOOLS`)."""
    for i, raw in enumerate(req.tools or ()):
        kind = raw.get("type") if isinstance(raw, dict) else None
        if isinstance(kind, str) and kind.startswith(PER_USE_TOOLS):
            raise InvalidRequest(f"The server tool '{echo(kind)}' is billed by Anthropic per use, which this "
                                 "gateway cannot bill; it is not offered.", param=f"tools[{i}]")


def check_body(raw: dict[str, Any]) -> None:
    """The whole client body (what an Anthropic deployment gets) is nested at most MAX_BODY_DEPTH."""
    check_depth(raw, "body", MAX_BODY_DEPTH)


def _generation(req: MessagesRequest, body: dict[str, Any], output_cap: int | None) -> None:
    body["max_completion_tokens"] = min(req.max_tokens, output_cap) if output_cap else req.max_tokens
    if req.stop_sequences:
        body["stop"] = req.stop_sequences[:MAX_CHAT_STOPS]
    for name in ("temperature", "top_p"):
        value = getattr(req, name)
        if value is not None:
            body[name] = value
    if req.metadata is not None and req.metadata.user_id:
        check_storable(req.metadata.user_id, "metadata.user_id")  # the ledger keeps it
        body["user"] = req.metadata.user_id
    if req.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}


def _convert(body: dict[str, Any]) -> ChatCompletionRequest:
    try:
        return convert(body, ChatCompletionRequest)
    except InvalidRequest as err:  # a value Anthropic takes that has no chat equivalent
        raise InvalidRequest(f"This request cannot be translated for models other than Anthropic's: {err.message}",
                             param=err.param) from None


def _plain(message: ChatMessage) -> ChatMessage:
    """A message without the fields only the canonical form keeps."""
    if "reasoning_details" not in message:
        return message
    return {k: v for k, v in message.items() if k != "reasoning_details"}


# ---------------------------------------------------------------------- messages
def _blocks(content: Content) -> Blocks:
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def _text_of(content: Content, where: str) -> str:
    if isinstance(content, str):
        return content
    texts = []
    for j, raw in enumerate(content):
        found = block(raw, f"{where}[{j}]" if where == "system" else f"{where}.content[{j}]")
        if isinstance(found, TextBlock):
            texts.append(found.text)
    return "\n".join(texts)


def _system(system: Content | None) -> list[ChatMessage]:
    if system is None:
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}] if system else []
    parts = []
    for j, raw in enumerate(system):
        found = block(raw, f"system[{j}]")
        if isinstance(found, TextBlock):
            parts.append({"type": "text", "text": found.text})
    return [{"role": "system", "content": parts}] if parts else []


def _user(content: Content, where: str) -> list[ChatMessage]:
    """Tool results first (chat wants them right after the assistant's calls), then the rest."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    results: list[ChatMessage] = []
    parts: list[Part] = []
    for j, raw in enumerate(content):
        at = f"{where}.content[{j}]"
        found = block(raw, at)
        if isinstance(found, ToolResultBlock):
            text, images = _result_content(found.content, at)
            if found.is_error:
                text = f"Error: {text}"
            results.append({"role": "tool", "tool_call_id": found.tool_use_id, "content": text})
            parts += images
        elif found is not None:
            parts += _parts(found, at)
    if parts:
        only_text = len(parts) == 1 and parts[0]["type"] == "text"
        results.append({"role": "user", "content": parts[0]["text"] if only_text else parts})
    return results


def _parts(found: Any, where: str) -> list[Part]:
    """The chat content parts of a user-side block (thinking and tool_use have none there)."""
    if isinstance(found, TextBlock):
        return [{"type": "text", "text": found.text}]
    if isinstance(found, ImageBlock):
        return _image(found.source)
    if isinstance(found, DocumentBlock):
        return _document(found, where)
    return []


def _image(source: Base64Source | UrlSource | FileSource) -> list[Part]:
    if isinstance(source, Base64Source):
        return [{"type": "image_url", "image_url": {"url": f"data:{source.media_type};base64,{source.data}"}}]
    if isinstance(source, UrlSource):
        return [{"type": "image_url", "image_url": {"url": source.url}}]
    return []  # an Anthropic Files API id means nothing to other models


def _document(doc: DocumentBlock, where: str) -> list[Part]:
    source = doc.source
    title = f"{doc.title}\n\n" if doc.title else ""
    if isinstance(source, PlainTextSource):
        return [{"type": "text", "text": title + source.data}]
    if isinstance(source, Base64Source):
        if source.media_type != "application/pdf":
            raise InvalidRequest("A base64 document must be a PDF (media_type application/pdf).",
                                 param=f"{where}.source.media_type")
        name = (doc.title or "document")[:200]
        return [{"type": "file", "file": {"filename": name if name.endswith(".pdf") else f"{name}.pdf",
                                          "file_data": f"data:application/pdf;base64,{source.data}"}}]
    if isinstance(source, ContentSource):
        parts: list[Part] = []
        for j, raw in enumerate(_blocks(source.content)):
            inner = block(raw, f"{where}.source.content[{j}]")
            if isinstance(inner, TextBlock | ImageBlock):
                parts += _parts(inner, where)
        if title and parts:
            parts.insert(0, {"type": "text", "text": title.rstrip()})
        return parts
    return []  # url and file sources: Anthropic fetches them, other models cannot


def _result_content(content: Content | None, where: str) -> tuple[str, list[Part]]:
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    texts: list[str] = []
    images: list[Part] = []
    for j, raw in enumerate(content):
        found = block(raw, f"{where}.content[{j}]")
        for part in _parts(found, where) if found is not None else ():
            if part["type"] == "text":
                texts.append(part["text"])
            else:
                images.append(part)
    return "\n".join(texts), images


def _assistant(content: Content, where: str) -> ChatMessage:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    details: list[dict[str, Any]] = []
    for j, raw in enumerate(content):
        at = f"{where}.content[{j}]"
        found = block(raw, at)
        if isinstance(found, TextBlock):
            texts.append(found.text)
        elif isinstance(found, ToolUseBlock):
            check_depth(found.input, f"{at}.input")
            calls.append({"id": found.id, "type": "function",
                          "function": {"name": found.name, "arguments": orjson.dumps(found.input).decode()}})
        elif isinstance(found, ThinkingBlock):
            details.append({"type": "reasoning.text", "text": found.thinking, "signature": found.signature,
                            "format": SIGNATURE_FORMAT})
        elif isinstance(found, RedactedThinkingBlock):
            details.append({"type": "reasoning.encrypted", "data": found.data, "format": SIGNATURE_FORMAT})
    message: ChatMessage = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    if details:
        message["reasoning_details"] = details
    return message


# ---------------------------------------------------------------------- tools and thinking
def _tools(req: MessagesRequest | CountTokensRequest) -> list[dict[str, Any]]:
    """Custom tools as functions; Anthropic's server tools (typed `web_search_...`, `bash_...`)
    are Anthropic's to run: other models do not get them."""
    out = []
    for i, raw in enumerate(req.tools or ()):
        if not isinstance(raw, dict):
            raise InvalidRequest(f"Invalid value for 'tools[{i}]': expected an object.", param=f"tools[{i}]")
        if raw.get("type") not in (None, "custom"):
            continue
        tool = checked(raw, CustomTool, f"tools[{i}]")
        check_depth(tool.input_schema, f"tools[{i}].input_schema")
        function: dict[str, Any] = {"name": tool.name, "parameters": tool.input_schema}
        if tool.description is not None:
            function["description"] = tool.description
        if tool.strict is not None:
            function["strict"] = tool.strict
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(req: MessagesRequest | CountTokensRequest, body: dict[str, Any]) -> None:
    choice = req.tool_choice
    if choice is None:
        return
    if isinstance(choice, ToolChoiceNone):
        body["tool_choice"] = "none"
        return
    if isinstance(choice, ToolChoiceAny):
        body["tool_choice"] = "required"
    elif isinstance(choice, ToolChoiceTool):
        body["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
    else:
        body["tool_choice"] = "auto"
    if choice.disable_parallel_tool_use:
        body["parallel_tool_calls"] = False


def _reasoning(req: MessagesRequest | CountTokensRequest) -> dict[str, Any] | None:
    """`thinking` as the chat form's thinking budget (canonical only: see the package docstring)."""
    raw = req.thinking
    if raw is None or raw.get("type") not in THINKING_TYPES:
        return None
    thinking: Thinking = checked(raw, Thinking, "thinking")  # type: ignore[arg-type]
    if isinstance(thinking, ThinkingEnabled):
        return {"max_tokens": thinking.budget_tokens}
    if isinstance(thinking, ThinkingAdaptive):
        return {"enabled": True}
    return None
