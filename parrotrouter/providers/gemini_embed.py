"""Gemini embeddings: `models/{model}:batchEmbedContents` (at most 100 requests a batch; larger
calls are split), `outputDimensionality` for `dimensions`. Gemini reports no token counts: the
gateway counts them."""

from __future__ import annotations

from typing import Any

import orjson

from ..catalog import ProviderSpec
from ..upstream.client import UpstreamRequest
from .base import EmbeddingCall, json_object, malformed

BATCH = 100  # requests in one batchEmbedContents call, at most


def model_name(model: str) -> str:
    return model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"


def batch_body(call: EmbeddingCall) -> dict[str, Any]:
    name = model_name(call.deployment.upstream_model)
    extra = {"outputDimensionality": call.dimensions} if call.dimensions is not None else {}
    return {"requests": [{"model": name, "content": {"parts": [{"text": text}]}, **extra} for text in call.texts()]}


def from_batch(resp: dict[str, Any], model: str) -> dict[str, Any]:
    items = resp.get("embeddings")
    if not isinstance(items, list):
        raise malformed("embeddings answer")
    data = [{"object": "embedding", "index": i, "embedding": item.get("values") if isinstance(item, dict) else None}
            for i, item in enumerate(items)]
    return {"object": "list", "data": data, "model": model}


class GeminiEmbeddings:
    """The embeddings half of the Gemini adapter."""

    spec: ProviderSpec
    _headers: dict[str, str]

    def embeddings_batch(self, call: EmbeddingCall) -> int:
        return BATCH

    def embeddings_request(self, call: EmbeddingCall) -> UpstreamRequest:
        url = f"{self.spec.base_url}/{model_name(call.deployment.upstream_model)}:batchEmbedContents"
        return UpstreamRequest(url, orjson.dumps(batch_body(call)), self._headers, False)

    def embeddings_response(self, body: bytes, call: EmbeddingCall) -> dict[str, Any]:
        return from_batch(json_object(body, "embeddings answer"), call.deployment.upstream_model)
