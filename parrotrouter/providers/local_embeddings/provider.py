"""The local embedding provider: the model runs in one worker thread (off the event loop), with a
bounded queue (503 `model_overloaded` beyond it, as the local chat model). It is loaded on its
first request (`providers/lazy.py`), not at start-up."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ...catalog import ProviderSpec
from ...errors import InvalidRequest, ModelOverloaded
from ..base import ChatCall, EmbeddingCall, Provider
from ..lazy import LazyModel
from . import model_files

if TYPE_CHECKING:  # numpy, safetensors and tokenizers: imported with the model, on first use
    from .model import WordLlama

QUEUE_SIZE = 8


class LocalEmbeddingProvider(Provider):
    def __init__(self, spec: ProviderSpec) -> None:
        super().__init__(spec)
        self.pending = 0
        self.executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"embed-{spec.name}")
        self.model: LazyModel[WordLlama] = LazyModel(spec.name, self._load)

    async def _load(self) -> WordLlama:
        files = model_files()
        if files is None:
            raise RuntimeError(f"provider '{self.name}': the wordllama package is not installed "
                               "(pip install 'parrotrouter[local]')")
        from .model import WordLlama

        return await asyncio.get_running_loop().run_in_executor(self.executor, WordLlama, *files)

    async def aclose(self) -> None:
        self.model.cancel()
        self.executor.shutdown(wait=False, cancel_futures=True)

    def ready(self) -> bool:
        return self.model.ready()

    def _refuse(self) -> InvalidRequest:
        return InvalidRequest(f"The provider '{self.name}' serves embedding models only (POST /v1/embeddings).",
                              param="model")

    async def chat(self, call: ChatCall) -> dict[str, Any]:
        raise self._refuse()

    def chat_stream(self, call: ChatCall) -> AsyncIterator[list[dict[str, Any]]]:
        raise self._refuse()

    async def embeddings(self, call: EmbeddingCall) -> dict[str, Any]:
        model = self.model.value or await self.model.get()
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
