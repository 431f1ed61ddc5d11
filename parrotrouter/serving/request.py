"""The canonical generation request: what every inbound API decodes to, and all the serving core
asks of a request (model, stream, output limit times answers, user, features, prompt counting, the
reservation bound, the provider call)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable
from typing import Any, Literal

from ..accounting.bounds import (
    Billable,
    chat_billable,
    chat_cheap_billable,
    completion_billable,
    completion_cheap_billable,
    exact_tokenizer,
)
from ..catalog import ModelSpec
from ..errors import echo
from ..protocol.chat import ChatCompletionRequest, JsonObjectFormat, JsonSchemaFormat
from ..protocol.completions import CompletionRequest
from ..protocol.routing_fields import NO_ROUTING, BodyRouting, decode_routing, sent_parameters
from ..providers.base import ChatCall, CompletionCall, NativeCall
from ..routing.router import Candidate
from ..tokens import count_text, estimate_chat_prompt_tokens
from .types import Chunks, JSONObject

Kind = Literal["chat", "completions"]


@dataclasses.dataclass(frozen=True, slots=True)
class Shape:
    """What differs between the kinds in the answer's shape."""

    ledger_name: str  # the ledger's `endpoint`
    id_prefix: str
    object_type: str
    chunk_type: str


SHAPES: dict[Kind, Shape] = {
    "chat": Shape("chat.completions", "chatcmpl-", "chat.completion", "chat.completion.chunk"),
    "completions": Shape("completions", "cmpl-", "text_completion", "text_completion"),
}


@dataclasses.dataclass(frozen=True, slots=True)
class NativeBody:
    """The client's body in its own wire format, for deployments that speak it (`NativeCall`)."""

    dialect: str  # e.g. "anthropic.messages", "openai.responses"
    body: dict[str, Any]
    # The client's headers of that wire format the upstream must see too (e.g. `anthropic-beta`).
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    # Text the upstream reads in `body` that the canonical request leaves out (items chat cannot
    # express): counted as prompt, so reservations and estimates do not miss it (the inbound API
    # includes it in the request's `body_size`).
    counted: str = ""
    # Upper bounds of the prompt and output tokens a deployment taking the body natively bills,
    # where the translated body shows less (0: the translated body's bound holds). The output's:
    # the client's own cap, which the translation may have lowered to the catalog's (reservations
    # and token rate limits take it: `GenerationRequest.output_limit`).
    prompt_bound: int = 0
    output_bound: int = 0


_PATHS = {"chat.completions": "POST /v1/chat/completions", "messages": "POST /v1/messages",
          "responses": "POST /v1/responses"}


@dataclasses.dataclass(frozen=True, slots=True)
class GenerationRequest:
    """A chat or text completion request, decoded and validated.

    `raw` is the client's body as sent: OpenAI-compatible upstreams get its unknown fields
    passed through (providers only; routing gets `routing` and `sent_params`)."""

    payload: ChatCompletionRequest | CompletionRequest
    raw: dict[str, Any]
    body_size: int
    routing: BodyRouting = NO_ROUTING
    sent_params: frozenset[str] = frozenset()
    # Set by inbound APIs other than chat: the ledger's endpoint name, and the client's own body
    # for deployments that take it natively.
    endpoint: str | None = None
    native: NativeBody | None = None
    id_prefix: str | None = None  # of the answer's (and ledger row's) id, e.g. "msg_"
    # Read many times per request: derived once.
    kind: Kind = dataclasses.field(init=False)
    shape: Shape = dataclasses.field(init=False)
    model: str = dataclasses.field(init=False)
    stream: bool = dataclasses.field(init=False)
    # Whether the last provider call took the native body (None: no call yet); count_prompt counts
    # `native.counted` unless it was translated. Set per attempt, hence not frozen in effect.
    served_natively: bool | None = dataclasses.field(init=False, default=None, compare=False)

    def __post_init__(self) -> None:
        kind: Kind = "chat" if isinstance(self.payload, ChatCompletionRequest) else "completions"
        object.__setattr__(self, "kind", kind)
        shape = SHAPES[kind]
        if self.endpoint is not None:
            shape = dataclasses.replace(shape, ledger_name=self.endpoint)
        if self.id_prefix is not None:
            shape = dataclasses.replace(shape, id_prefix=self.id_prefix)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "model", self.payload.model)
        object.__setattr__(self, "stream", bool(self.payload.stream))

    @classmethod
    def decode(cls, payload: ChatCompletionRequest | CompletionRequest, raw: dict[str, Any],
               body_size: int, *, endpoint: str | None = None, native: NativeBody | None = None,
               routing_body: dict[str, Any] | None = None, id_prefix: str | None = None) -> GenerationRequest:
        """`raw` is the chat or completions body (for inbound APIs other than chat: the body they
        translated to); routing fields (`models`, `provider`) are read from `routing_body`, the
        client's own body, when given."""
        source = raw if routing_body is None else routing_body
        routing = decode_routing(source)
        params = sent_parameters(source) if routing.require_parameters else frozenset()
        return cls(payload, raw, body_size, routing, params, endpoint, native, id_prefix)

    # ------------------------------------------------------------------ what it asks for
    @property
    def include_usage(self) -> bool:
        return self.payload.include_usage

    @property
    def usage_accounting(self) -> bool:
        """OpenRouter's `usage: {include: true}`: cost and token details, zeros included."""
        return self.payload.usage_accounting

    @property
    def output_limit(self) -> int | None:
        """The client's cap on generated tokens, per answer (of its native body, when that is
        higher: a deployment taking it natively gets that one)."""
        limit = self.payload.output_limit
        native = self.native
        if native is not None and native.output_bound and (limit is None or native.output_bound > limit):
            return native.output_bound
        return limit

    @property
    def user(self) -> str | None:
        return self.payload.user

    def needs(self) -> tuple[bool, bool, bool]:
        """(tools, vision, JSON output): what a model must offer to serve it (`auto`)."""
        payload = self.payload
        if not isinstance(payload, ChatCompletionRequest):
            return False, False, False
        tools = bool(payload.tools or payload.functions)
        json_mode = isinstance(payload.response_format, JsonObjectFormat | JsonSchemaFormat)
        return tools, payload.has_images(), json_mode

    def mismatch(self, model: ModelSpec) -> str | None:
        """Whether the model serves this kind of request: chat-type requests (chat, Responses,
        Messages) need a chat model, /v1/completions a model that serves text completions (a
        cloud's chat models do not; its instruct models serve nothing else)."""
        caps = model.capabilities
        if self.kind == "chat":
            if caps.chat:
                return None
            if caps.completion:
                path = _PATHS.get(self.shape.ledger_name, self.shape.ledger_name)
                return (f"The model '{echo(model.id)}' is a text completion model: it serves POST /v1/completions "
                        f"only, not {path}.")
        elif caps.completion:
            return None
        elif caps.chat:
            return (f"The model '{echo(model.id)}' does not serve POST /v1/completions (its provider serves it as a "
                    "chat model): use POST /v1/chat/completions. GET /v1/models?capability=completion lists "
                    "the models that serve /v1/completions.")
        return (f"The model '{echo(model.id)}' does not serve {self.shape.ledger_name} requests"
                + (": it is an embedding model (POST /v1/embeddings)." if caps.embeddings else "."))

    def features(self) -> list[str]:
        """The key-permission features it uses."""
        if isinstance(self.payload, ChatCompletionRequest):
            return self.payload.features()
        return ["completions", "streaming"] if self.stream else ["completions"]

    # ------------------------------------------------------------------ counting and bounds
    def count_prompt(self, model: str) -> int:
        """Prompt tokens, counted with the model family's tokenizer (usage when an upstream
        reports none; token rate limits)."""
        payload = self.payload
        if isinstance(payload, ChatCompletionRequest):
            counted = estimate_chat_prompt_tokens(payload.messages, payload.tools, model)
            # what only a native upstream reads: not when the last call was translated (it never
            # got that text), but before any call and after a native one
            return counted + (self._uncounted(model) if self.served_natively is not False else 0)
        prompt = payload.prompt
        if isinstance(prompt, str):
            return count_text(prompt, model)
        if prompt and isinstance(prompt[0], int):
            return len(prompt)
        return sum(count_text(p, model) if isinstance(p, str) else len(p) for p in prompt)

    def billable(self, model: str, output_cap: int) -> Billable:
        """Upper bounds of what an upstream serving `model` bills, tokenized."""
        raw = self.raw
        if isinstance(self.payload, ChatCompletionRequest):
            billable = chat_billable(self.payload, raw, model, output_cap)
            billable = dataclasses.replace(billable, prompt=billable.prompt + self._uncounted(model))
            # OpenAI's families (counted exactly, by tokens) are not served by a deployment that
            # takes a native body other than OpenAI's own: the bytes of one do not bound them
            return billable if exact_tokenizer(model) else self._native_bound(billable)
        return completion_billable(self.payload, raw, model, output_cap)

    def cheap_billable(self, output_cap: int) -> Billable:
        """The same bound without a tokenizer (the body's bytes)."""
        raw = self.raw
        if isinstance(self.payload, ChatCompletionRequest):
            return self._native_bound(chat_cheap_billable(self.payload, raw, self.body_size, output_cap))
        return completion_cheap_billable(self.payload, raw, self.body_size, output_cap)

    def _uncounted(self, model: str) -> int:
        native = self.native
        return count_text(native.counted, model) if native is not None and native.counted else 0

    def _native_bound(self, translated: Billable) -> Billable:
        """A native body can bill more than its translation shows (whichever route serves it)."""
        native = self.native
        if native is None or native.prompt_bound <= translated.prompt:
            return translated
        return Billable(native.prompt_bound, translated.output)

    # ------------------------------------------------------------------ the provider call
    def _native_call(self, candidate: Candidate) -> NativeCall | None:
        native = self.native
        if native is None or native.dialect not in candidate.provider.native_dialects:
            object.__setattr__(self, "served_natively", False)
            return None
        object.__setattr__(self, "served_natively", True)
        assert isinstance(self.payload, ChatCompletionRequest)
        return NativeCall(native.dialect, native.body,
                          ChatCall(self.payload, self.raw, candidate.model, candidate.deployment), native.headers)

    def run(self, candidate: Candidate) -> Awaitable[JSONObject]:
        """The provider call to await (the provider's own coroutine: no frame of ours in between)."""
        raw = self.raw
        if self.native is not None and (call := self._native_call(candidate)) is not None:
            return candidate.provider.native(call)
        if isinstance(self.payload, ChatCompletionRequest):
            return candidate.provider.chat(ChatCall(self.payload, raw, candidate.model, candidate.deployment))
        return candidate.provider.completion(CompletionCall(self.payload, raw, candidate.model, candidate.deployment))

    def run_stream(self, candidate: Candidate) -> AsyncIterator[Chunks]:
        raw = self.raw
        if self.native is not None and (call := self._native_call(candidate)) is not None:
            return candidate.provider.native_stream(call)
        if isinstance(self.payload, ChatCompletionRequest):
            return candidate.provider.chat_stream(ChatCall(self.payload, raw, candidate.model, candidate.deployment))
        return candidate.provider.completion_stream(
            CompletionCall(self.payload, raw, candidate.model, candidate.deployment))
