"""`POST /v1/chat/completions` request: every field of OpenAI's current Chat Completions API.

Unknown fields are ignored here (the raw body keeps them for OpenAI-compatible upstreams);
documented types and ranges are enforced, so a bad value is a 400 that names its `param`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

NonEmptyStr = Annotated[str, Meta(min_length=1)]
Penalty = Annotated[float, Meta(ge=-2.0, le=2.0)]

# Bounds of caller-controlled values (the README's table lists them). OpenAI's documented limits
# where it documents one; otherwise a cap no real request reaches.
# max_tokens, max_completion_tokens: above every model's context window (the largest is 10M
# tokens), and small enough that the credit reservation (tokens x price, times a lease of many
# requests) stays far inside the database's 64-bit nano-dollar integers. 0 is valid, as in OpenAI's
# published API spec (no minimum; the upstream decides what it means): the reservation and token
# rate limits then hold the model's own cap (accounting/reserve.py `output_cap`).
MAX_OUTPUT_TOKENS = 10_000_000
OutputTokens = Annotated[int, Meta(ge=0, le=MAX_OUTPUT_TOKENS)]
Seed = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]  # int64, as upstreams parse it
MAX_STOP_CHARS = 1024  # per stop sequence (OpenAI documents up to 4, not their length)
StopText = Annotated[str, Meta(max_length=MAX_STOP_CHARS)]
Stop = StopText | Annotated[list[StopText], Meta(max_length=4)]
# Token id -> bias; OpenAI accepts at most 300 entries.
LogitBias = Annotated[dict[Annotated[str, Meta(max_length=32)], Annotated[int, Meta(ge=-100, le=100)]],
                      Meta(max_length=300)]
User = Annotated[str, Meta(max_length=256)]  # the ledger keeps up to 256 characters
# OpenAI: at most 16 pairs, keys up to 64 characters, values up to 512.
Metadata = Annotated[dict[Annotated[str, Meta(max_length=64)], Annotated[str, Meta(max_length=512)]],
                     Meta(max_length=16)]
Identifier64 = Annotated[str, Meta(max_length=64)]  # safety_identifier, prompt_cache_key (OpenAI: 64)
MAX_TOOLS = 128  # OpenAI's limit on tools (and functions)


class _Part(Struct, tag_field="type", omit_defaults=True):
    pass


class TextPart(_Part, tag="text"):
    text: str


class ImageUrl(Struct, omit_defaults=True):
    url: NonEmptyStr
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Part, tag="image_url"):
    image_url: ImageUrl


class InputAudio(Struct):
    data: str
    format: str


class AudioPart(_Part, tag="input_audio"):
    input_audio: InputAudio


class FileRef(Struct, omit_defaults=True):
    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None


class FilePart(_Part, tag="file"):
    file: FileRef


class RefusalPart(_Part, tag="refusal"):
    refusal: str


UserPart = TextPart | ImagePart | AudioPart | FilePart
AssistantPart = TextPart | RefusalPart


class FunctionCall(Struct):
    name: str
    arguments: str


class FunctionToolCall(Struct, tag_field="type", tag="function", omit_defaults=True):
    id: str
    function: FunctionCall
    # Provider data a client echoes back (Gemini's thought signatures, as Google's own
    # OpenAI-compatible endpoint returns them).
    extra_content: dict[str, Any] | None = None


class CustomCall(Struct):
    name: str
    input: str


class CustomToolCall(Struct, tag_field="type", tag="custom"):
    id: str
    custom: CustomCall


class _Message(Struct, tag_field="role", omit_defaults=True):
    pass


class SystemMessage(_Message, tag="system"):
    content: str | list[TextPart]
    name: str | None = None


class DeveloperMessage(_Message, tag="developer"):
    content: str | list[TextPart]
    name: str | None = None


class UserMessage(_Message, tag="user"):
    content: str | list[UserPart]
    name: str | None = None


class AssistantMessage(_Message, tag="assistant"):
    content: str | list[AssistantPart] | None = None
    refusal: str | None = None
    name: str | None = None
    tool_calls: list[FunctionToolCall | CustomToolCall] | None = None
    function_call: FunctionCall | None = None
    audio: dict[str, Any] | None = None
    # Extensions carried by reasoning models (OpenRouter-style), kept for providers that need them.
    reasoning: str | None = None
    reasoning_details: list[dict[str, Any]] | None = None


class ToolMessage(_Message, tag="tool"):
    content: str | list[TextPart]
    tool_call_id: NonEmptyStr


class FunctionMessage(_Message, tag="function"):
    content: str | None
    name: str


Message = SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage | FunctionMessage


class FunctionDefinition(Struct, omit_defaults=True):
    name: NonEmptyStr
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class FunctionTool(Struct, tag_field="type", tag="function"):
    function: FunctionDefinition


class CustomTool(Struct, tag_field="type", tag="custom"):
    custom: dict[str, Any]


class NamedFunction(Struct):
    name: NonEmptyStr


class NamedToolChoice(Struct, tag_field="type", tag="function"):
    function: NamedFunction


class NamedCustomChoice(Struct, tag_field="type", tag="custom"):
    custom: NamedFunction


class AllowedToolsChoice(Struct, tag_field="type", tag="allowed_tools"):
    allowed_tools: dict[str, Any]


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice | NamedCustomChoice | AllowedToolsChoice


class JsonSchemaSpec(Struct, omit_defaults=True):
    name: Annotated[str, Meta(min_length=1, max_length=64)]
    description: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None


class TextFormat(Struct, tag_field="type", tag="text"):
    pass


class JsonObjectFormat(Struct, tag_field="type", tag="json_object"):
    pass


class JsonSchemaFormat(Struct, tag_field="type", tag="json_schema"):
    json_schema: JsonSchemaSpec


ResponseFormat = TextFormat | JsonObjectFormat | JsonSchemaFormat


class StreamOptions(Struct, omit_defaults=True):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None


class UsageAccounting(Struct, omit_defaults=True, forbid_unknown_fields=True):
    """OpenRouter's `usage: {include: true}`: the answer's usage in its accounting shape (the
    gateway's to honour; never sent upstream)."""

    include: bool = False


class ChatCompletionRequest(Struct, omit_defaults=True):
    model: NonEmptyStr
    messages: Annotated[list[Message], Meta(min_length=1)]
    temperature: Annotated[float, Meta(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Meta(ge=0.0, le=1.0)] | None = None
    n: Annotated[int, Meta(ge=1, le=128)] | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    usage: UsageAccounting | None = None
    stop: Stop | None = None
    max_tokens: OutputTokens | None = None
    max_completion_tokens: OutputTokens | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    logit_bias: LogitBias | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Meta(ge=0, le=20)] | None = None
    seed: Seed | None = None
    user: User | None = None
    tools: Annotated[list[FunctionTool | CustomTool], Meta(max_length=MAX_TOOLS)] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    functions: Annotated[list[FunctionDefinition], Meta(min_length=1, max_length=MAX_TOOLS)] | None = None
    function_call: Literal["none", "auto"] | NamedFunction | None = None
    response_format: ResponseFormat | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    reasoning: dict[str, Any] | None = None
    verbosity: Literal["low", "medium", "high"] | None = None
    metadata: Metadata | None = None
    store: bool | None = None
    service_tier: str | None = None
    modalities: list[str] | None = None
    audio: dict[str, Any] | None = None
    prediction: dict[str, Any] | None = None
    web_search_options: dict[str, Any] | None = None
    prompt_cache_key: Identifier64 | None = None
    safety_identifier: Identifier64 | None = None

    @property
    def output_limit(self) -> int | None:
        """The client's cap on generated tokens, whichever field carried it."""
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    @property
    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    @property
    def include_usage(self) -> bool:
        """A stream ends with a usage chunk: asked by `stream_options` or by `usage.include`."""
        return bool((self.stream_options and self.stream_options.include_usage) or (self.usage and self.usage.include))

    @property
    def usage_accounting(self) -> bool:
        return bool(self.usage and self.usage.include)

    def features(self) -> list[str]:
        """The key-permission features this request uses (chat, streaming, tools, vision, json_mode)."""
        used = ["chat"]
        if self.stream:
            used.append("streaming")
        if self.tools or self.functions:
            used.append("tools")
        if isinstance(self.response_format, JsonObjectFormat | JsonSchemaFormat):
            used.append("json_mode")
        if self.has_images():
            used.append("vision")
        return used

    def has_images(self) -> bool:
        for m in self.messages:
            if isinstance(m, UserMessage) and isinstance(m.content, list):
                for part in m.content:
                    if isinstance(part, ImagePart):
                        return True
        return False


def message_text(content: str | list[Any] | None) -> str:
    """The text of a message content (string or parts), parts joined without separators."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(getattr(p, "text", "") or getattr(p, "refusal", "") for p in content)


def to_builtins(value: Any) -> Any:
    return msgspec.to_builtins(value)


class ChatCompletionUpdate(Struct):
    """`POST /v1/chat/completions/{completion_id}`: a stored completion's new metadata (null clears it)."""

    metadata: Metadata | None
