"""Bedrock embeddings through InvokeModel (`POST /model/{modelId}/invoke`), in each model
family's documented body:

- Amazon Titan Text Embeddings (v2: `amazon.titan-embed-text-v2:0`): one `inputText` a call
  (calls are split), `dimensions` (256, 512 or 1024), `normalize: true`; `inputTextTokenCount`
  is the usage.
- Cohere Embed (`cohere.embed-english-v3`, `cohere.embed-multilingual-v3`): up to 96 `texts`,
  `input_type: search_document`; no token count (the gateway counts).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson

from ...errors import FailureKind, InvalidRequest, UpstreamFailure
from ...upstream.client import UpstreamRequest
from ..base import EmbeddingCall, json_object, malformed

COHERE_BATCH = 96


def family(model: str) -> str:
    """`titan` or `cohere`, by the model id (also inside an inference profile or ARN)."""
    if "titan-embed" in model:
        return "titan"
    if "cohere.embed" in model:
        return "cohere"
    raise InvalidRequest(f"The Bedrock model '{model[:100]}' is not an embedding model the gateway knows "
                         "(Amazon Titan Text Embeddings, Cohere Embed).", param="model")


def invoke_body(call: EmbeddingCall) -> bytes:
    texts = call.texts()
    if family(call.deployment.upstream_model) == "titan":
        body: dict[str, Any] = {"inputText": texts[0], "normalize": True}
        if call.dimensions is not None:
            body["dimensions"] = call.dimensions
        return orjson.dumps(body)
    if call.dimensions is not None:
        raise InvalidRequest("Cohere Embed on Bedrock has fixed dimensions: leave 'dimensions' out.",
                             param="dimensions")
    return orjson.dumps({"texts": texts, "input_type": "search_document"})


def from_invoke(resp: dict[str, Any], model: str) -> dict[str, Any]:
    if family(model) == "titan":
        out: dict[str, Any] = {"object": "list", "model": model,
                               "data": [{"object": "embedding", "index": 0, "embedding": resp.get("embedding")}]}
        tokens = resp.get("inputTextTokenCount")
        if isinstance(tokens, int) and not isinstance(tokens, bool):
            out["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
        return out
    embeddings = resp.get("embeddings")
    vectors = embeddings.get("float") if isinstance(embeddings, dict) else embeddings
    if not isinstance(vectors, list):
        raise malformed("embeddings answer")
    return {"object": "list", "model": model,
            "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]}


class BedrockEmbeddings:
    """The embeddings half of the Bedrock adapter."""

    base_url: str | None

    def signed_headers(self, url: str, body: bytes) -> dict[str, str]:
        raise NotImplementedError  # the adapter's (SigV4 or a Bedrock API key)

    def embeddings_batch(self, call: EmbeddingCall) -> int:
        return 1 if family(call.deployment.upstream_model) == "titan" else COHERE_BATCH

    def embeddings_request(self, call: EmbeddingCall) -> UpstreamRequest:
        if self.base_url is None:
            raise UpstreamFailure("The Bedrock provider has no AWS region.", kind=FailureKind.AUTH)
        url = f"{self.base_url}/model/{quote(call.deployment.upstream_model, safe='')}/invoke"
        body = invoke_body(call)
        return UpstreamRequest(url, body, self.signed_headers(url, body), False, encoded_url=True)

    def embeddings_response(self, body: bytes, call: EmbeddingCall) -> dict[str, Any]:
        return from_invoke(json_object(body, "embeddings answer"), call.deployment.upstream_model)

