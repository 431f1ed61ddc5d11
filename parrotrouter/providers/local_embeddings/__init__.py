"""The local embedding model (`type: wordllama`): WordLlama's `l2_supercat` static embeddings
(256 dimensions), whose weights and tokenizer ship inside the `wordllama` PyPI package (the
`local` extra): nothing is downloaded at run time, and no cloud key is needed.

Importing this package imports nothing heavy: the model (`model.py`: numpy, safetensors,
tokenizers) is loaded when the provider starts, in a worker thread.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ...catalog import ProviderSpec
from ..base import Provider
from ..embedding_models import EMBEDDING
from ..registry import ProviderType

MODEL_ID = "wordllama-l2-supercat"
DIMENSIONS = 256
PACKAGE = "wordllama"
WEIGHTS = "weights/l2_supercat_256.safetensors"
TOKENIZER = "tokenizers/l2_supercat_tokenizer_config.json"


def model_files() -> tuple[str, str] | None:
    """(weights, tokenizer) inside the installed `wordllama` package, found without importing it
    (its own loader looks for the tokenizer in the wrong folder and then downloads it)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        weights, tokenizer = Path(folder) / WEIGHTS, Path(folder) / TOKENIZER
        if weights.is_file() and tokenizer.is_file():
            return str(weights), str(tokenizer)
    return None


def _build(spec: ProviderSpec) -> Provider:
    from .provider import LocalEmbeddingProvider

    return LocalEmbeddingProvider(spec)


PROVIDER = ProviderType(
    name="wordllama", display_name="Local embeddings (WordLlama)", build=_build,
    endpoints=frozenset({"embeddings"}), supported_params=frozenset({"dimensions", "encoding_format"}),
    capabilities=lambda model_id, spec: EMBEDDING, needs_base_url=False,
)
