"""The local embedding provider: the model runs in one worker thread (off the event loop), with a
bounded queue (503 `model_overloaded` beyond it, as the local chat model)."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import AsyncIterator
from typing import Any

from ...catalog import ProviderSpec
from ...errors import InvalidRequest, ModelOverloaded
from ..base import ChatCall, EmbeddingCall, Provider
from . import model_files
from .model import WordLlama

QUEUE_SIZE = 8


class LocalEmbeddingProvider(Provider):
    def __init__(self, spec: ProviderSpec) -> None:
        super().__init__(spec)
        self.model: WordLlama | None = None
        self.pending = 0
        self.executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"embed-{spec.name}")

    async def start(self) -> None:
        files = model_files()
        if files is None:
            raise RuntimeError(f"provider '{self.name}': the wordllama package is not installed "
                               "(pip install 'parrotrouter[local]')")
        loop = asyncio.get_running_loop()
        self.model = await loop.run_in_executor(self.executor, WordLlama, *files)

    async def aclose(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)

    def ready(self) -> bool:
        return self.model is not None

    def _refuse(self) -> InvalidRequest:
        return InvalidRequest(f"The provider '{self.name}' serves embedding models only (POST /v1/embeddings).",
                              param="model")

    async def chat(self, call: ChatCall) -> dict[str, Any]:
        raise self._refuse()

    def chat_stream(self, call: ChatCall) -> AsyncIterator[list[dict[str, Any]]]:
        raise self._refuse()

    async def embeddings(self, call: EmbeddingCall) -> dict[str, Any]:
        model = self.model
        if model is None:
            raise InvalidRequest(f"The local embedding model '{self.name}' is still loading.")
        dimensions = call.dimensions or model.dimensions
        if dimensions > model.dimensions:
            raise InvalidRequest(f"'dimensions' can be at most {model.dimensions} for the model "
                                 f"'{call.model.id}'.", param="dimensions")
        texts = call.texts()
        if self.pending >= QUEUE_SIZE:
            raise ModelOverloaded(f"The local embedding model '{self.name}' is busy ({self.pending} requests "
                                  "queued or running). Retry shortly.", retry_after=1)
        self.pending += 1
        try:
            loop = asyncio.get_running_loop()
            vectors, tokens = await loop.run_in_executor(self.executor, model.embed, texts, dimensions)
        finally:
            self.pending -= 1
        return {"object": "list", "model": call.model.id,
                "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
