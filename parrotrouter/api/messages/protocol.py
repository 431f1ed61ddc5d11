"""`POST /v1/messages` and `/v1/messages/count_tokens` request bodies: Anthropic's Messages API.

Lenient on what is new, loud about what is wrong: unknown fields are ignored here (an Anthropic
deployment gets the client's body as it came), and so are content block, tool and thinking types
this gateway does not know (they reach Anthropic natively; other models do not get them). Every
documented field that is translated has its type and range checked, so a bad value is a 400 that
names its `param`. Content blocks are checked one by one (`blocks.py`), with their position.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta, Struct
from multidict import CIMultiDict, CIMultiDictProxy

from ...protocol.chat import MAX_OUTPUT_TOKENS, MAX_STOP_CHARS, MAX_TOOLS, UsageAccounting

# Bounds (the README's table lists them). Anthropic's documented limits where it has one.
MAX_MESSAGES = 100_000  # Anthropic: "a limit of 100,000 messages in a single request"
MAX_BLOCKS = 10_000  # content blocks of one message, of the system prompt or of one tool result
MAX_STOP_SEQUENCES = 16
MAX_NAME = 256  # model and tool names
MAX_ID = 512  # tool_use ids
MAX_DEPTH = 64  # nesting of free-form JSON (tool inputs, schemas)
# Nesting of the whole body: an Anthropic deployment gets it re-encoded, and the encoder stops at
# 255 levels (fields this gateway does not know are not checked otherwise).
MAX_BODY_DEPTH = 128

DIALECT = "anthropic.messages"  # what an Anthropic deployment takes natively
# The client's headers an Anthropic deployment gets too (the provider decides which it sends).
NATIVE_HEADERS = ("anthropic-version", "anthropic-beta")
MAX_HEADER = 2048


def native_headers(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> dict[str, str]:
    """The client's Anthropic headers, each sent once or more (`anthropic-beta: a` and
    `anthropic-beta: b` are `a,b`, as HTTP joins them), when printable and at most MAX_HEADER."""
    return {name: value for name in NATIVE_HEADERS
            if (value := ",".join(headers.getall(name, ()))) and len(value) <= MAX_HEADER and value.isprintable()}


Name = Annotated[str, Meta(min_length=1, max_length=MAX_NAME)]
Block = dict[str, Any]
Blocks = Annotated[list[Block], Meta(max_length=MAX_BLOCKS)]
Content = str | Blocks


class InputMessage(Struct):
    role: Literal["user", "assistant", "system"]
    content: Content


class Metadata(Struct):
    user_id: Annotated[str, Meta(max_length=256)] | None = None


class ToolChoiceAuto(Struct, tag_field="type", tag="auto"):
    disable_parallel_tool_use: bool | None = None


class ToolChoiceAny(Struct, tag_field="type", tag="any"):
    disable_parallel_tool_use: bool | None = None


class ToolChoiceTool(Struct, tag_field="type", tag="tool"):
    name: Name
    disable_parallel_tool_use: bool | None = None


class ToolChoiceNone(Struct, tag_field="type", tag="none"):
    pass


ToolChoice = ToolChoiceAuto | ToolChoiceAny | ToolChoiceTool | ToolChoiceNone


class ThinkingEnabled(Struct, tag_field="type", tag="enabled"):
    budget_tokens: Annotated[int, Meta(ge=1, le=MAX_OUTPUT_TOKENS)]


class ThinkingDisabled(Struct, tag_field="type", tag="disabled"):
    pass


class ThinkingAdaptive(Struct, tag_field="type", tag="adaptive"):
    pass


Thinking = ThinkingEnabled | ThinkingDisabled | ThinkingAdaptive
THINKING_TYPES = frozenset({"enabled", "disabled", "adaptive"})


class JsonOutputFormat(Struct, tag_field="type", tag="json_schema"):
    schema: dict[str, Any]


class OutputConfig(Struct):
    format: JsonOutputFormat | None = None
    effort: Annotated[str, Meta(max_length=32)] | None = None


class _Body(Struct, kw_only=True):
    """What create and count_tokens share."""

    model: Name
    messages: Annotated[list[InputMessage], Meta(min_length=1, max_length=MAX_MESSAGES)]
    system: Content | None = None
    tools: Annotated[list[dict[str, Any]], Meta(max_length=MAX_TOOLS)] | None = None
    tool_choice: ToolChoice | None = None
    # Checked by type in `decode.thinking` (a type this gateway does not know goes to Anthropic only).
    thinking: dict[str, Any] | None = None
    output_config: OutputConfig | None = None
    output_format: JsonOutputFormat | None = None  # the structured-outputs beta's spelling


class CountTokensRequest(_Body, kw_only=True):
    pass


class MessagesRequest(_Body, kw_only=True):
    max_tokens: Annotated[int, Meta(ge=1, le=MAX_OUTPUT_TOKENS)]
    stop_sequences: Annotated[list[Annotated[str, Meta(max_length=MAX_STOP_CHARS)]],
                              Meta(max_length=MAX_STOP_SEQUENCES)] | None = None
    temperature: Annotated[float, Meta(ge=0.0, le=1.0)] | None = None
    top_p: Annotated[float, Meta(ge=0.0, le=1.0)] | None = None
    top_k: Annotated[int, Meta(ge=0, le=1_000_000)] | None = None
    stream: bool | None = None
    metadata: Metadata | None = None
    usage: UsageAccounting | None = None  # checked as on chat; the answer's usage always has its cost


# ---------------------------------------------------------------------- content blocks
class TextBlock(Struct):
    text: str


class Base64Source(Struct, tag_field="type", tag="base64"):
    media_type: Annotated[str, Meta(min_length=1, max_length=128)]
    data: str


class UrlSource(Struct, tag_field="type", tag="url"):
    url: Annotated[str, Meta(min_length=1)]


class FileSource(Struct, tag_field="type", tag="file"):
    file_id: Annotated[str, Meta(min_length=1, max_length=MAX_ID)]


class PlainTextSource(Struct, tag_field="type", tag="text"):
    data: str
    media_type: str | None = None


class ContentSource(Struct, tag_field="type", tag="content"):
    content: Content


class ImageBlock(Struct):
    source: Base64Source | UrlSource | FileSource


class DocumentBlock(Struct):
    source: Base64Source | UrlSource | FileSource | PlainTextSource | ContentSource
    title: str | None = None
    context: str | None = None


class ToolUseBlock(Struct):
    id: Annotated[str, Meta(min_length=1, max_length=MAX_ID)]
    name: Name
    input: dict[str, Any]


class ToolResultBlock(Struct):
    tool_use_id: Annotated[str, Meta(min_length=1, max_length=MAX_ID)]
    content: Content | None = None
    is_error: bool | None = None


class ThinkingBlock(Struct):
    thinking: str
    signature: str | None = None


class RedactedThinkingBlock(Struct):
    data: str


class CustomTool(Struct):
    name: Name
    input_schema: dict[str, Any]
    description: str | None = None
    strict: bool | None = None


KnownBlock = (TextBlock | ImageBlock | DocumentBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock
              | RedactedThinkingBlock)
BLOCK_TYPES: dict[str, type[KnownBlock]] = {
    "text": TextBlock, "image": ImageBlock, "document": DocumentBlock, "tool_use": ToolUseBlock,
    "tool_result": ToolResultBlock, "thinking": ThinkingBlock, "redacted_thinking": RedactedThinkingBlock,
}
