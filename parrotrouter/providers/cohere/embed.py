"""Cohere embeddings: POST /v2/embed with `embedding_types: ["float"]` and `input_type`
(`search_document` unless the client's body names another of Cohere's), `output_dimension` for
`dimensions`; at most 96 texts a call (larger calls are split). Usage: `meta.billed_units`."""

from __future__ import annotations

from typing import Any

import orjson

from ...upstream.client import UpstreamRequest
from ..base import EmbeddingCall, json_object, malformed

BATCH = 96  # texts in one /v2/embed call, at most
INPUT_TYPES = frozenset({"search_document", "search_query", "classification", "clustering"})


def embed_body(call: EmbeddingCall) -> dict[str, Any]:
    wanted = call.raw.get("input_type")
    body: dict[str, Any] = {"model": call.deployment.upstream_model, "texts": call.texts(),
                            "input_type": wanted if wanted in INPUT_TYPES else "search_document",
                            "embedding_types": ["float"]}
    if call.dimensions is not None:
        body["output_dimension"] = call.dimensions
    return body


def from_embed(resp: dict[str, Any], model: str) -> dict[str, Any]:
    embeddings = resp.get("embeddings")
    vectors = embeddings.get("float") if isinstance(embeddings, dict) else embeddings  # v1's plain list too
    if not isinstance(vectors, list):
        raise malformed("embeddings answer")
    out: dict[str, Any] = {"object": "list", "model": model,
                           "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]}
    meta = resp.get("meta")
    units = meta.get("billed_units") if isinstance(meta, dict) else None
    tokens = units.get("input_tokens") if isinstance(units, dict) else None
    if isinstance(tokens, int | float) and not isinstance(tokens, bool):
        out["usage"] = {"prompt_tokens": int(tokens), "total_tokens": int(tokens)}
    return out


class CohereEmbeddings:
    """The embeddings half of the Cohere adapter."""

    _url: str  # /v2/chat
    _headers: dict[str, str]

    def embeddings_batch(self, call: EmbeddingCall) -> int:
        return BATCH

    def embeddings_request(self, call: EmbeddingCall) -> UpstreamRequest:
        url = self._url.removesuffix("/v2/chat") + "/v2/embed"
        return UpstreamRequest(url, orjson.dumps(embed_body(call)), self._headers, False)

    def embeddings_response(self, body: bytes, call: EmbeddingCall) -> dict[str, Any]:
        return from_embed(json_object(body, "embeddings answer"), call.deployment.upstream_model)
