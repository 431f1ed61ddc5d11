"""`POST /v1/responses` request: OpenAI's Responses API as typed structs, bounded like
`protocol/chat.py` (unknown fields are ignored here; native passthrough forwards the client's body).

`input` items and `tools` are converted one by one (`item`, `tool`), so an item type only the
Responses API itself knows (hosted tools, their calls) can be told apart from a malformed one.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta, Struct

from ...protocol.chat import MAX_OUTPUT_TOKENS, MAX_TOOLS, Identifier64, Metadata, NonEmptyStr, UsageAccounting, User

MAX_INPUT_ITEMS = 16_384  # items of `input` (a long agent session stays far below)
MAX_PARTS = 1024  # content parts of one message or tool output
MAX_INCLUDE = 32
ResponseId = Annotated[str, Meta(min_length=1, max_length=64)]
CallId = Annotated[str, Meta(min_length=1, max_length=256)]
ToolName = Annotated[str, Meta(min_length=1, max_length=128)]


class _Part(Struct, tag_field="type", omit_defaults=True):
    pass


class InputText(_Part, tag="input_text"):
    text: str


class InputImage(_Part, tag="input_image"):
    image_url: str | None = None
    file_id: str | None = None
    detail: Literal["auto", "low", "high"] | None = None


class InputFile(_Part, tag="input_file"):
    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None
    file_url: str | None = None


class InputAudioData(Struct):
    data: str
    format: str


class InputAudio(_Part, tag="input_audio"):
    input_audio: InputAudioData


class OutputText(_Part, tag="output_text"):
    text: str
    annotations: list[Any] | None = None


class Refusal(_Part, tag="refusal"):
    refusal: str


ContentPart = InputText | InputImage | InputFile | InputAudio | OutputText | Refusal
ToolOutputPart = InputText | InputImage | InputFile
Parts = Annotated[list[ContentPart], Meta(max_length=MAX_PARTS)]
ToolOutput = str | Annotated[list[ToolOutputPart], Meta(max_length=MAX_PARTS)]


class _Item(Struct, tag_field="type", omit_defaults=True):
    pass


class MessageItem(_Item, tag="message"):
    role: Literal["user", "assistant", "system", "developer"]
    content: str | Parts
    id: str | None = None
    status: str | None = None


class FunctionCallItem(_Item, tag="function_call"):
    call_id: CallId
    name: ToolName
    arguments: str
    id: str | None = None
    status: str | None = None
    namespace: ToolName | None = None  # a function of a `namespace` tool


class FunctionCallOutputItem(_Item, tag="function_call_output"):
    call_id: CallId
    output: ToolOutput
    id: str | None = None
    status: str | None = None


class CustomToolCallItem(_Item, tag="custom_tool_call"):
    call_id: CallId
    name: ToolName
    input: str
    id: str | None = None
    status: str | None = None


class CustomToolCallOutputItem(_Item, tag="custom_tool_call_output"):
    call_id: CallId
    output: ToolOutput
    id: str | None = None


class SummaryText(Struct, tag_field="type", tag="summary_text"):
    text: str


class ReasoningItem(_Item, tag="reasoning"):
    summary: Annotated[list[SummaryText], Meta(max_length=MAX_PARTS)] = []
    id: str | None = None
    content: list[dict[str, Any]] | None = None
    encrypted_content: str | None = None
    status: str | None = None


InputItem = (MessageItem | FunctionCallItem | FunctionCallOutputItem | CustomToolCallItem
             | CustomToolCallOutputItem | ReasoningItem)
# Item types the translation to chat understands; any other (hosted tools' calls, item_reference)
# only a deployment that speaks the Responses API natively can take.
TRANSLATED_ITEMS = frozenset({"message", "function_call", "function_call_output", "custom_tool_call",
                              "custom_tool_call_output", "reasoning"})


class FunctionToolDef(Struct, tag_field="type", tag="function", omit_defaults=True):
    name: ToolName
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class CustomFormat(Struct, omit_defaults=True):
    type: Literal["text", "grammar"]
    syntax: str | None = None
    definition: str | None = None


class CustomToolDef(Struct, tag_field="type", tag="custom", omit_defaults=True):
    """A freeform tool (Codex's `apply_patch`): the model writes raw text, maybe in a grammar."""

    name: ToolName
    description: str | None = None
    format: CustomFormat | None = None


class NamespaceToolDef(Struct, tag_field="type", tag="namespace", omit_defaults=True):
    """A group of function tools under one name (Codex's `multi_agent_v1`)."""

    name: ToolName
    tools: Annotated[list[FunctionToolDef], Meta(max_length=MAX_TOOLS)]
    description: str | None = None


ToolDef = FunctionToolDef | CustomToolDef | NamespaceToolDef
TRANSLATED_TOOLS = frozenset({"function", "custom", "namespace"})
# Hosted tools a model may use but never needs (Codex always offers web_search): served by a model
# that does not speak Responses natively, they are left out; any other hosted tool is refused.
OPTIONAL_TOOLS = frozenset({"web_search", "web_search_preview", "web_search_2025_08_26",
                            "web_search_preview_2025_03_11"})
# Hosted tools OpenAI bills per call or per session, besides tokens, at prices the gateway has no
# table for: never forwarded, so nothing is served unbilled. Web search is left out (as for any
# translated model: the model answers without it); the others are refused.
PER_CALL_TOOLS = OPTIONAL_TOOLS | frozenset({"file_search", "code_interpreter", "image_generation"})
# Codex's tool_search runs on the client (over the tools it defers) and costs nothing: forwarded to a
# native upstream, left out for a translated model (Codex offers it for every model id it knows).
CLIENT_ONLY_TOOLS = frozenset({"tool_search"})


class NamedTool(Struct):
    type: Literal["function", "custom"]
    name: ToolName


class AllowedTools(Struct):
    type: Literal["allowed_tools"]
    mode: Literal["auto", "required"]
    tools: Annotated[list[dict[str, Any]], Meta(max_length=MAX_TOOLS)]


class ResponsesTextFormat(Struct, tag_field="type", tag="text"):
    pass


class ResponsesJsonObject(Struct, tag_field="type", tag="json_object"):
    pass


class ResponsesJsonSchema(Struct, tag_field="type", tag="json_schema", omit_defaults=True):
    name: Annotated[str, Meta(min_length=1, max_length=64)]
    schema: dict[str, Any]
    description: str | None = None
    strict: bool | None = None


class TextConfig(Struct, omit_defaults=True):
    format: ResponsesTextFormat | ResponsesJsonObject | ResponsesJsonSchema | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class ReasoningConfig(Struct, omit_defaults=True):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None
    generate_summary: Literal["auto", "concise", "detailed"] | None = None


class ResponsesStreamOptions(Struct, omit_defaults=True):
    include_obfuscation: bool | None = None


class ResponsesRequest(Struct, omit_defaults=True):
    """The top level; `input` and `tools` stay raw here (converted per item, see the module doc)."""

    model: Annotated[str, Meta(min_length=1, max_length=256)]
    input: str | Annotated[list[dict[str, Any]], Meta(max_length=MAX_INPUT_ITEMS)] | None = None
    instructions: str | None = None
    tools: Annotated[list[dict[str, Any]], Meta(max_length=MAX_TOOLS)] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    max_tool_calls: Annotated[int, Meta(ge=1, le=10_000)] | None = None
    text: TextConfig | None = None
    reasoning: ReasoningConfig | None = None
    max_output_tokens: Annotated[int, Meta(ge=1, le=MAX_OUTPUT_TOKENS)] | None = None
    temperature: Annotated[float, Meta(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Meta(ge=0.0, le=1.0)] | None = None
    top_logprobs: Annotated[int, Meta(ge=0, le=20)] | None = None
    metadata: Metadata | None = None
    user: User | None = None
    safety_identifier: Identifier64 | None = None
    prompt_cache_key: Identifier64 | None = None
    stream: bool | None = None
    stream_options: ResponsesStreamOptions | None = None
    store: bool | None = None
    usage: UsageAccounting | None = None  # checked as on chat; the response's usage always has its cost
    previous_response_id: ResponseId | None = None
    include: Annotated[list[Annotated[str, Meta(max_length=64)]], Meta(max_length=MAX_INCLUDE)] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    # "priority" and "scale" are billed above the price the gateway charges: not offered.
    service_tier: Literal["auto", "default", "flex"] | None = None
    background: bool | None = None
    conversation: str | dict[str, Any] | None = None
    prompt: dict[str, Any] | None = None


def item_type(raw: Any) -> str | None:
    """An input item's type; OpenAI's "easy" messages (`{role, content}`) have none: "message"."""
    if not isinstance(raw, dict):
        return None
    kind = raw.get("type")
    if kind is None and "role" in raw:
        return "message"
    return kind if isinstance(kind, str) else None


__all__ = ["InputItem", "NonEmptyStr", "ResponsesRequest", "ToolDef", "item_type"]
