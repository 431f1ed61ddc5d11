"""Adapter for every OpenAI-compatible upstream (OpenAI, Groq, Together, DeepSeek, Mistral, vLLM,
llama.cpp server, Ollama's /v1, ...). The request is passed through, unknown fields included;
only the model name, the usage request and fields the upstream rejects are changed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import orjson

from ..catalog import ProviderSpec
from ..errors import FailureKind, UpstreamFailure
from ..upstream.client import ServerSentEvent, UpstreamRequest
from .base import (
    GATEWAY_FIELDS,
    ChatCall,
    CompletionCall,
    EmbeddingCall,
    json_object,
    json_or_none,
    malformed,
    upstream_failure,
)
from .http import HttpProvider
from .presets import Preset
from .registry import ProviderType

# Error codes that say more than the HTTP status does (a provider's own codes: its adapter's table).
ErrorCodes = Mapping[str, FailureKind]
NO_CODES: ErrorCodes = {}


class OpenAIStream:
    """OpenAI SSE: `data: <chunk>` events, `data: [DONE]` at the end, `{"error": ...}` on failure."""

    __slots__ = ("codes", "done", "provider")

    def __init__(self, provider: str, codes: ErrorCodes = NO_CODES) -> None:
        self.done = False
        self.provider = provider
        self.codes = codes

    def feed(self, event: ServerSentEvent) -> list[dict[str, Any]]:
        data = event.data
        if data == "[DONE]":
            self.done = True
            return []
        try:  # inline, not json_object(): this runs for every chunk of every OpenAI-compatible stream
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise malformed("stream chunk") from None
        if not isinstance(chunk, dict):
            raise malformed("stream chunk")
        if chunk.get("error"):
            raise _error_from_body(chunk, 500, {}, self.provider, in_stream=True, codes=self.codes)
        return [chunk]


def _error_from_body(
    body: Any, status: int, headers: Mapping[str, str], provider: str, *, in_stream: bool = False,
    codes: ErrorCodes = NO_CODES,
) -> UpstreamFailure:
    err = body.get("error") if isinstance(body, dict) else None
    message = code = etype = None
    if isinstance(err, dict):
        message, code, etype = err.get("message"), err.get("code"), err.get("type")
        status = _int(err.get("status")) or _int(code) or status
    elif isinstance(err, str):
        message = err
    kind = None
    if isinstance(code, str) and code in codes:
        kind = codes[code]
    elif code == "context_length_exceeded":
        kind = FailureKind.CONTEXT_LENGTH_EXCEEDED
    elif code in ("rate_limit_exceeded",) or etype in ("rate_limit_error", "tokens"):
        kind = FailureKind.RATE_LIMIT
    elif etype in ("overloaded_error", "server_overloaded") or code == "model_overloaded":
        kind = FailureKind.MODEL_OVERLOADED
    elif in_stream and status < 500 and kind is None and code is None:
        kind = FailureKind.SERVER_ERROR
    return upstream_failure(status, headers, message if isinstance(message, str) else None,
                            kind=kind, provider=provider)


def _int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return value
    return None


class OpenAIAdapter:
    error_codes: ErrorCodes = NO_CODES  # a subclass's provider-specific error codes

    def __init__(self, spec: ProviderSpec) -> None:
        assert spec.base_url is not None
        self.spec = spec
        self._chat_url = spec.base_url + "/chat/completions"
        self._completions_url = spec.base_url + "/completions"
        self._embeddings_url = spec.base_url + "/embeddings"
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if spec.api_key:
            headers["Authorization"] = f"Bearer {spec.api_key.reveal()}"
        headers.update(spec.headers)
        self._headers = headers
        self._drop = GATEWAY_FIELDS | spec.drop_params
        self.stream_usage = True  # ask a stream for its usage (an upstream that refuses stream_options: no)

    @property
    def headers(self) -> Mapping[str, str]:
        return self._headers

    def responses_url(self, model: str) -> str | None:
        """The upstream's Responses API endpoint, for the providers that have one."""
        assert self.spec.base_url is not None
        return self.spec.base_url + "/responses"

    def _body(self, raw: dict[str, Any], model: str, stream: bool) -> bytes:
        body = {k: v for k, v in raw.items() if k not in self._drop}
        body["model"] = model
        if not stream:
            body.pop("stream_options", None)  # accepted without `stream` (api/chat_completions), meaningless here
        elif self.stream_usage:
            # Always ask for usage: accounting must not depend on what the client asked for.
            options = body.get("stream_options")
            body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
        return orjson.dumps(body)

    def upstream_model(self, call: ChatCall | CompletionCall) -> str:
        return call.deployment.upstream_model

    def chat_request(self, call: ChatCall) -> UpstreamRequest:
        return UpstreamRequest(self._chat_url, self._body(call.raw, self.upstream_model(call), call.stream),
                               self._headers, call.stream)

    def completion_request(self, call: CompletionCall) -> UpstreamRequest:
        return UpstreamRequest(self._completions_url,
                               self._body(call.raw, self.upstream_model(call), call.stream),
                               self._headers, call.stream)

    def _json(self, body: bytes, what: str) -> dict[str, Any]:
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise malformed(what) from None
        if not isinstance(obj, dict):
            raise malformed(what)
        if obj.get("error"):
            raise _error_from_body(obj, 500, {}, self.spec.name, in_stream=True, codes=self.error_codes)
        if not isinstance(obj.get("choices"), list):
            raise malformed(what)
        return obj

    def chat_response(self, body: bytes, call: ChatCall) -> dict[str, Any]:
        return self._json(body, "chat completion")

    def completion_response(self, body: bytes, call: CompletionCall) -> dict[str, Any]:
        return self._json(body, "completion")

    def embeddings_request(self, call: EmbeddingCall) -> UpstreamRequest:
        """The client's body, passed through (token arrays, `dimensions`, base64 included)."""
        return UpstreamRequest(self.embeddings_url(call), self._body(call.raw, call.deployment.upstream_model, False),
                               self._headers, False)

    def embeddings_batch(self, call: EmbeddingCall) -> int:
        return len(call.inputs)  # OpenAI's own limit (2048) is the edge's

    def embeddings_url(self, call: EmbeddingCall) -> str:
        return self._embeddings_url

    def embeddings_response(self, body: bytes, call: EmbeddingCall) -> dict[str, Any]:
        obj = json_object(body, "embeddings answer")
        if obj.get("error"):
            raise _error_from_body(obj, 500, {}, self.spec.name, in_stream=True, codes=self.error_codes)
        return obj

    def delete_model_request(self, upstream_model: str) -> UpstreamRequest | None:
        """OpenAI's `DELETE /models/{model}` (fine-tuned models); None where the upstream has none."""
        assert self.spec.base_url is not None
        url = self.spec.base_url + "/models/" + quote(upstream_model, safe="")
        return UpstreamRequest(url, b"", self._headers, False, encoded_url=True, method="DELETE")

    def model_deleted(self, body: bytes) -> bool:
        """`deleted` of OpenAI's answer `{"id", "object": "model", "deleted"}`."""
        obj = json_object(body, "model deletion answer")
        deleted = obj.get("deleted")
        if not isinstance(deleted, bool):
            raise malformed("model deletion answer")
        return deleted

    def chat_stream(self, call: ChatCall) -> OpenAIStream:
        return OpenAIStream(self.spec.name, self.error_codes)

    def completion_stream(self, call: CompletionCall) -> OpenAIStream:
        return OpenAIStream(self.spec.name, self.error_codes)

    def error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamFailure:
        parsed = json_or_none(body)
        return _error_from_body(parsed, status, headers, self.spec.name, codes=self.error_codes)


class OpenAIProvider(HttpProvider):
    """An OpenAI-compatible provider: the HTTP provider, plus OpenAI's model management."""

    def __init__(self, spec: ProviderSpec, adapter: OpenAIAdapter) -> None:
        super().__init__(spec, adapter, supports_completions=True)
        self.openai = adapter

    async def delete_model(self, upstream_model: str) -> bool:
        request = self.openai.delete_model_request(upstream_model)
        if request is None:
            return await super().delete_model(upstream_model)
        return self.openai.model_deleted(await self._call(request))


def _build(spec: ProviderSpec) -> HttpProvider:
    from .openai_responses import build_http_provider

    return build_http_provider(spec, OpenAIAdapter(spec))


PROVIDER = ProviderType(
    name="openai", display_name="OpenAI-compatible", build=_build,
    endpoints=frozenset({"chat", "completions", "embeddings"}),
    presets=(
        Preset("openai", "openai", "OpenAI", "https://api.openai.com/v1", ("OPENAI_API_KEY",),
               "OPENAI_BASE_URL", "openai", vision_prefixes=("gpt-4o", "gpt-4.1", "gpt-5", "o1", "o3", "o4"),
               discover="openai", discover_filter=r"^ft:",
               # gpt-oss is an open-weights model OpenAI publishes, not one its API serves
               model_filter=r"^(?!gpt-oss-)",
               # OpenAI's deprecations page (platform.openai.com/docs/deprecations): shutdown dates
               retired=(("text-davinci-002", "2024-01-04"), ("text-davinci-003", "2024-01-04"),
                        ("gpt-3.5-0301", "2024-06-13"), ("gpt-3.5-turbo-0613", "2024-09-13"),
                        ("gpt-3.5-turbo-16k", "2024-09-13"), ("gpt-4-vision-preview", "2024-12-06"),
                        ("gpt-4-32k", "2025-06-06"), ("gpt-4.5-preview", "2025-07-14"),
                        ("o1-preview", "2025-07-28"), ("o1-mini", "2025-10-27"))),
        Preset("groq", "openai", "Groq", "https://api.groq.com/openai/v1", ("GROQ_API_KEY",),
               prices_id="groq", drop_params=frozenset({"logit_bias", "top_logprobs", "store", "metadata"})),
        Preset("mistral", "openai", "Mistral AI", "https://api.mistral.ai/v1", ("MISTRAL_API_KEY",),
               prices_id="mistral",
               drop_params=frozenset({"user", "store", "metadata", "logit_bias", "service_tier"})),
        Preset("deepseek", "openai", "DeepSeek", "https://api.deepseek.com/v1", ("DEEPSEEK_API_KEY",),
               prices_id="deepseek"),
        Preset("together", "openai", "Together AI", "https://api.together.xyz/v1", ("TOGETHER_API_KEY",),
               prices_id="together"),
        Preset("fireworks", "openai", "Fireworks AI", "https://api.fireworks.ai/inference/v1",
               ("FIREWORKS_API_KEY",), prices_id="fireworks"),
        Preset("xai", "openai", "xAI", "https://api.x.ai/v1", ("XAI_API_KEY",), prices_id="x-ai"),
        Preset("cerebras", "openai", "Cerebras", "https://api.cerebras.ai/v1", ("CEREBRAS_API_KEY",),
               prices_id="cerebras"),
        Preset("perplexity", "openai", "Perplexity", "https://api.perplexity.ai", ("PERPLEXITY_API_KEY",),
               prices_id="perplexity"),
        Preset("openrouter", "openai", "OpenRouter", "https://openrouter.ai/api/v1", ("OPENROUTER_API_KEY",),
               discover="openrouter"),
        # Servers of the operator's own, enabled by their URL variable; no key needed, models free,
        # listed from the server itself (parrotrouter/discovery/).
        Preset("ollama", "openai", "Ollama", "http://127.0.0.1:11434/v1", (), discover="ollama", local=True,
               url_envs=("OLLAMA_HOST",)),
        Preset("lmstudio", "openai", "LM Studio", "http://127.0.0.1:1234/v1", ("LMSTUDIO_API_KEY", "LM_STUDIO_API_KEY"),
               discover="lmstudio", local=True,
               url_envs=("LMSTUDIO_BASE_URL", "LM_STUDIO_BASE_URL", "LM_STUDIO_API_BASE")),
        Preset("vllm", "openai", "vLLM", "http://127.0.0.1:8000/v1", ("VLLM_API_KEY",), discover="openai", local=True,
               url_envs=("VLLM_BASE_URL",)),
        Preset("llamacpp-server", "openai", "llama.cpp server", "http://127.0.0.1:8080/v1", ("LLAMA_API_KEY",),
               discover="llamacpp", local=True, url_envs=("LLAMACPP_SERVER_URL",)),
    ),
)
