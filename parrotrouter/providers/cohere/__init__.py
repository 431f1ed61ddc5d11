"""Cohere v2 Chat (`type: cohere`): OpenAI chat requests to POST /v2/chat and back.

`request.py` builds the /v2/chat body; `response.py` translates answers and stream events
(streamed tool calls in `CohereStream`); `embed.py` serves /v1/embeddings through /v2/embed; here
are the adapter (URL, headers, errors by status) and the provider's declaration.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

import orjson

from ...catalog import ProviderSpec
from ...errors import FailureKind, InvalidRequest, UpstreamFailure
from ...upstream.client import UpstreamRequest
from ..base import ChatCall, CompletionCall, json_object, json_or_none, kind_for_status, malformed, upstream_failure
from ..http import HttpProvider
from ..presets import Preset
from ..registry import ProviderType
from .embed import CohereEmbeddings
from .request import DATED, to_cohere
from .response import CohereStream, from_cohere, usage_of

__all__ = ["PROVIDER", "CohereAdapter", "CohereStream", "from_cohere", "to_cohere", "usage_of"]

DEFAULT_BASE_URL = "https://api.cohere.com"
# Cohere's documented statuses (errors reference and the SDK's error classes). 402: the gateway's
# account reached its billing limit, 498: an invalid token — the operator's key, not the caller.
KIND_BY_STATUS = {400: FailureKind.BAD_REQUEST, 401: FailureKind.AUTH, 402: FailureKind.AUTH,
                  403: FailureKind.AUTH, 404: FailureKind.NOT_FOUND, 422: FailureKind.BAD_REQUEST,
                  429: FailureKind.RATE_LIMIT, 498: FailureKind.AUTH, 499: FailureKind.SERVER_ERROR,
                  500: FailureKind.SERVER_ERROR, 501: FailureKind.SERVER_ERROR,
                  503: FailureKind.MODEL_OVERLOADED, 504: FailureKind.TIMEOUT}


class CohereAdapter(CohereEmbeddings):
    def __init__(self, spec: ProviderSpec) -> None:
        self.spec = spec
        base = (spec.base_url or DEFAULT_BASE_URL).rstrip("/")
        self._url = re.sub(r"/v[12]$", "", base) + "/v2/chat"
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if spec.api_key:
            headers["Authorization"] = f"Bearer {spec.api_key.reveal()}"
        headers.update(spec.headers)
        self._headers = headers
        self._stream_headers = {**headers, "Accept": "text/event-stream"}

    def chat_request(self, call: ChatCall) -> UpstreamRequest:
        body = to_cohere(call.request, call.raw, call.deployment.upstream_model, call.model.max_output_tokens)
        return UpstreamRequest(self._url, orjson.dumps(body), self._stream_headers if call.stream else self._headers,
                               call.stream)

    def chat_response(self, body: bytes, call: ChatCall) -> dict[str, Any]:
        resp = json_object(body, "response")
        if not isinstance(resp.get("message"), dict):
            raise malformed("response")
        return from_cohere(resp, self.spec.name)

    def chat_stream(self, call: ChatCall) -> CohereStream:
        return CohereStream(self.spec.name)

    def completion_request(self, call: CompletionCall) -> UpstreamRequest:
        raise InvalidRequest("Cohere has no text completions endpoint; use /v1/chat/completions.", param="model")

    def completion_response(self, body: bytes, call: CompletionCall) -> dict[str, Any]:
        raise malformed("completion")  # never reached: completion_request refuses first

    def completion_stream(self, call: CompletionCall) -> CohereStream:
        return CohereStream(self.spec.name)

    def error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamFailure:
        """Cohere's error body is `{"id": ..., "message": ...}`; the status says what it is."""
        parsed = json_or_none(body)
        message = parsed.get("message") if isinstance(parsed, dict) else None
        kind = KIND_BY_STATUS.get(status) or kind_for_status(status)
        return upstream_failure(status, headers, message, kind=kind, provider=self.spec.name)


def _build(spec: ProviderSpec) -> HttpProvider:
    spec = dataclasses.replace(spec, base_url=spec.base_url or DEFAULT_BASE_URL)
    return HttpProvider(spec, CohereAdapter(spec), supports_completions=False)


PROVIDER = ProviderType(
    name="cohere", display_name="Cohere", build=_build, needs_base_url=False,
    endpoints=frozenset({"chat", "embeddings"}),
    supported_params=frozenset({"max_tokens", "max_completion_tokens", "stop", "tools", "tool_choice", "temperature",
                                "top_p", "top_k", "seed", "presence_penalty", "frequency_penalty", "response_format",
                                "reasoning_effort", "reasoning"}),
    presets=(Preset("cohere", "cohere", "Cohere", DEFAULT_BASE_URL, ("CO_API_KEY", "COHERE_API_KEY"), "CO_API_URL",
                    "cohere", vision_prefixes=("command-a-vision", "c4ai-aya-vision"), model_filter=r"^command-(a|r)",
                    model_aliases=tuple((dated, family) for family, dated in DATED.items())),),
)
