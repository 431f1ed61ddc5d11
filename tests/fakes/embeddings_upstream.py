"""A fake upstream answering each vendor's embeddings endpoint in its documented wire format (the
shapes of the golden fixtures under tests/data/embeddings/), over real HTTP on loopback:

- OpenAI `POST /v1/embeddings` (float or base64, `dimensions`, token arrays);
- Azure `POST /openai/deployments/{deployment}/embeddings?api-version=...` (OpenAI's body);
- Gemini `POST /v1beta/models/{model}:batchEmbedContents` (`outputDimensionality`);
- Cohere `POST /v2/embed` (`embedding_types`, `output_dimension`, `meta.billed_units`);
- Bedrock `POST /model/{modelId}/invoke`: Titan Text Embeddings v2 (one `inputText`) and Cohere
  Embed (`texts`).

Vectors are deterministic: a text's vector depends on the text alone (its SHA-256), so the same
input gives the same vector through every vendor. The model name `...-500` fails with HTTP 500;
`...-slow` answers OpenAI's format after 3 s; `...total-only` reports only `total_tokens` in its usage.
Titan refuses an `inputText` over 50,000 characters, as
Bedrock documents.
Every request body, path and header set is recorded.
"""

from __future__ import annotations

import array
import asyncio
import base64
import hashlib
from typing import Any

from aiohttp import web

from .threaded import ThreadedServer

DEFAULT_DIMENSIONS = 16
TITAN_MAX_CHARACTERS = 50_000  # Titan Text Embeddings v2's limit on one inputText


def vector(text: str, dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """A deterministic vector for a text (values in [-1, 1], 1/128 apart: exact in float32)."""
    out: list[float] = []
    block = 0
    while len(out) < dimensions:
        digest = hashlib.sha256(f"{block}:{text}".encode()).digest()
        out += [(b - 128) / 128 for b in digest]
        block += 1
    return out[:dimensions]


def words(text: str) -> int:
    return max(1, len(text.split()))


class FakeEmbeddings(ThreadedServer):
    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/embeddings", self.openai)
        app.router.add_post("/openai/deployments/{deployment}/embeddings", self.azure)
        app.router.add_post("/v1beta/models/{call}", self.gemini)
        app.router.add_post("/v2/embed", self.cohere)
        app.router.add_post("/model/{model}/invoke", self.bedrock)

    @property
    def openai_url(self) -> str:
        return f"{self.url}/v1"

    @staticmethod
    def _failing(model: str) -> web.Response | None:
        if model.endswith("-500"):
            return web.json_response({"error": {"message": "The server had an error.", "type": "server_error"}},
                                     status=500)
        return None

    # ------------------------------------------------------------------ OpenAI and Azure
    async def openai(self, request: web.Request) -> web.Response:
        body = await self.record(request)
        if str(body.get("model")).endswith("-slow"):
            await asyncio.sleep(3)
        return self._openai_answer(body, str(body.get("model")))

    async def azure(self, request: web.Request) -> web.Response:
        body = await self.record(request)
        if "api-version" not in request.query or "api-key" not in request.headers:
            return web.json_response({"error": {"code": "401", "message": "Access denied."}}, status=401)
        return self._openai_answer(body, request.match_info["deployment"])

    def _openai_answer(self, body: dict[str, Any], model: str) -> web.Response:
        if (failing := self._failing(model)) is not None:
            return failing
        raw = body["input"]
        items = [raw] if isinstance(raw, str) or (raw and isinstance(raw[0], int)) else raw
        texts = [x if isinstance(x, str) else " ".join(map(str, x)) for x in items]
        dims = body.get("dimensions") or DEFAULT_DIMENSIONS
        data = []
        for i, text in enumerate(texts):
            values: Any = vector(text, dims)
            if body.get("encoding_format") == "base64":
                values = base64.b64encode(array.array("f", values).tobytes()).decode()
            data.append({"object": "embedding", "index": i, "embedding": values})
        tokens = sum(words(x) if isinstance(x, str) else len(x) for x in items)
        usage = {"total_tokens": tokens} if model.endswith("total-only") else {"prompt_tokens": tokens,
                                                                               "total_tokens": tokens}
        return web.json_response({"object": "list", "data": data, "model": model, "usage": usage})

    # ------------------------------------------------------------------ Gemini
    async def gemini(self, request: web.Request) -> web.Response:
        body = await self.record(request)
        model, _, method = request.match_info["call"].partition(":")
        if (failing := self._failing(model)) is not None:
            return failing
        if request.headers.get("x-goog-api-key") is None:
            return web.json_response({"error": {"code": 403, "message": "API key not valid.",
                                                "status": "PERMISSION_DENIED"}}, status=403)
        if method == "embedContent":
            return web.json_response({"embedding": {"values": self._gemini_values(body)}})
        if method != "batchEmbedContents":
            raise web.HTTPNotFound()
        requests = body["requests"]
        if len(requests) > 100:
            return web.json_response({"error": {"code": 400, "status": "INVALID_ARGUMENT",
                                                "message": "at most 100 requests can be in one batch"}}, status=400)
        for item in requests:
            if item.get("model") != f"models/{model}":
                return web.json_response({"error": {"code": 400, "status": "INVALID_ARGUMENT",
                                                    "message": "model of a request differs"}}, status=400)
        return web.json_response({"embeddings": [{"values": self._gemini_values(item)} for item in requests]})

    @staticmethod
    def _gemini_values(item: dict[str, Any]) -> list[float]:
        text = "".join(part["text"] for part in item["content"]["parts"])
        return vector(text, item.get("outputDimensionality") or DEFAULT_DIMENSIONS)

    # ------------------------------------------------------------------ Cohere
    async def cohere(self, request: web.Request) -> web.Response:
        body = await self.record(request)
        model = str(body.get("model"))
        if (failing := self._failing(model)) is not None:
            return failing
        texts = body["texts"]
        if len(texts) > 96 or not body.get("input_type"):
            return web.json_response({"message": "invalid request: texts or input_type"}, status=400)
        dims = body.get("output_dimension") or DEFAULT_DIMENSIONS
        types = body.get("embedding_types") or ["float"]
        return web.json_response({
            "id": "da6e531f-54c6-4a73-bf92-f60566d8d753",
            "embeddings": {kind: [vector(t, dims) for t in texts] for kind in types},
            "texts": texts,
            "meta": {"api_version": {"version": "2"},
                     "billed_units": {"input_tokens": sum(words(t) for t in texts)}},
            "response_type": "embeddings_by_type",
        })

    # ------------------------------------------------------------------ Bedrock InvokeModel
    async def bedrock(self, request: web.Request) -> web.Response:
        body = await self.record(request)
        model = request.match_info["model"]
        if (failing := self._failing(model)) is not None:
            return failing
        if not request.headers.get("Authorization", "").startswith(("AWS4-HMAC-SHA256", "Bearer ")):
            return web.json_response({"message": "Missing Authentication Token"}, status=403)
        if model.startswith("amazon.titan-embed"):
            text = body["inputText"]
            if len(text) > TITAN_MAX_CHARACTERS:
                return web.json_response({"message": f"Malformed input request: expected maxLength: "
                                                     f"{TITAN_MAX_CHARACTERS}, actual: {len(text)}"}, status=400)
            return web.json_response({"embedding": vector(text, body.get("dimensions") or 1024),
                                      "inputTextTokenCount": words(text)})
        if model.startswith("cohere.embed"):
            texts = body["texts"]
            if len(texts) > 96 or not body.get("input_type"):
                return web.json_response({"message": "Malformed input request"}, status=400)
            return web.json_response({"embeddings": [vector(t, 1024) for t in texts],
                                      "id": "b0b2c2f4-0000-4000-8000-000000000000",
                                      "response_type": "embeddings_floats", "texts": texts})
        return web.json_response({"message": "The provided model identifier is invalid."}, status=400)
