"""WordLlama inference: each text's token embeddings averaged, truncated to the dimensions asked
for (its vectors are trained Matryoshka-style, so a prefix is a smaller embedding), then scaled
to unit length. Synchronous and thread-safe: it runs in the provider's worker thread."""

from __future__ import annotations

from typing import Any

import numpy as np
from safetensors import safe_open
from tokenizers import Tokenizer


class WordLlama:
    def __init__(self, weights: str, tokenizer: str) -> None:
        with safe_open(weights, framework="np") as f:
            self.table: Any = np.ascontiguousarray(f.get_tensor("embedding.weight"), dtype=np.float32)
        self.tokenizer = Tokenizer.from_file(tokenizer)
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()

    @property
    def dimensions(self) -> int:
        return int(self.table.shape[1])

    def embed(self, texts: list[str], dimensions: int) -> tuple[list[list[float]], int]:
        """Unit vectors of `dimensions` values, and the tokens read."""
        vectors: list[list[float]] = []
        tokens = 0
        for encoding in self.tokenizer.encode_batch(texts, add_special_tokens=False):
            ids = np.asarray(encoding.ids, dtype=np.int64)
            tokens += len(ids)
            if not len(ids):  # nothing the tokenizer reads: the zero vector
                vectors.append([0.0] * dimensions)
                continue
            mean = self.table[ids, :dimensions].mean(axis=0)
            norm = float(np.linalg.norm(mean))
            vectors.append((mean / norm if norm else mean).tolist())
        return vectors, tokens
