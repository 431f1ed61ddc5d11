"""Gemini embeddings: `models/{model}:batchEmbedContents` (at most 100 requests a batch; larger
calls are split), `outputDimensionality` for `dimensions`. Gemini reports no token counts: the
gateway counts them.

Vectors shortened with `outputDimensionality` are not unit length (Google's docs ask callers to
normalise them); OpenAI's always are, and clients compare them by dot product: they are scaled to
unit length here."""

from __future__ import annotations

import math
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


def from_batch(resp: dict[str, Any], model: str, normalize: bool = False) -> dict[str, Any]:
    items = resp.get("embeddings")
    if not isinstance(items, list):
        raise malformed("embeddings answer")
    data = []
    for i, item in enumerate(items):
        values = item.get("values") if isinstance(item, dict) else None
        if normalize and isinstance(values, list):
            values = unit(values)
        data.append({"object": "embedding", "index": i, "embedding": values})
    return {"object": "list", "data": data, "model": model}


def unit(values: list[Any]) -> list[Any]:
    """The vector scaled to length 1 (as it came when it is not a list of numbers, or zero)."""
    try:
        norm = math.sqrt(math.fsum(x * x for x in values))
    except TypeError:
        return values  # not numbers: the serving core refuses it as malformed
    return [x / norm for x in values] if norm else values


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
        return from_batch(json_object(body, "embeddings answer"), call.deployment.upstream_model,
                          normalize=call.dimensions is not None)
