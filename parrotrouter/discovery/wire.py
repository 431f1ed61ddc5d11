"""The `/models` wire formats of OpenAI-compatible servers, read leniently and bounded.

One generic reader covers OpenAI's list (`{"object": "list", "data": [{"id": ...}]}`) and what
servers add to it: vLLM's `max_model_len`, llama.cpp server's `meta.n_ctx_train`, OpenRouter's
`context_length`, `pricing` (USD per token, as strings) and `architecture.input_modalities`.
Ollama's native `/api/tags` + `/api/show` and LM Studio's `/api/v0/models` have their own readers.
Everything an upstream says is checked here (ids, numbers, counts); an entry that fails a check is
skipped, never an error: a server listing garbage must not break the gateway.
"""

from __future__ import annotations

import dataclasses
import math
import re
import unicodedata
from decimal import Decimal, InvalidOperation
from typing import Any

MAX_BODY_BYTES = 8 * 2**20  # a /models answer larger than this is refused whole
MAX_MODELS = 5_000  # entries beyond this are ignored (and the truncation logged)
MAX_ID_CHARS = 256
MAX_CONTEXT = 1 << 27  # 134M tokens: any larger context length is a mistake, not a model
MAX_PRICE_MTOK = Decimal(1_000_000)  # USD per million tokens above which an upstream price is junk
_MILLION = Decimal(1_000_000)
_UNBILLABLE = ("request", "image", "web_search")  # OpenRouter's prices not per token


@dataclasses.dataclass(frozen=True, slots=True)
class Listed:
    """One model as the upstream described it (None: it did not say)."""

    id: str
    context_length: int | None = None
    created: int | None = None
    embedding: bool | None = None  # the server says it is (True) or is not (False) an embedding model
    vision: bool | None = None
    tools: bool | None = None
    # USD per million tokens, as the upstream priced it (OpenRouter): prompt, completion.
    price_mtok: tuple[Decimal, Decimal] | None = None
    digest: str | None = None  # Ollama: the model's content digest (its details change only with it)


@dataclasses.dataclass(frozen=True, slots=True)
class Listing:
    """What one read of an upstream found: the models, and how many entries were skipped."""

    models: tuple[Listed, ...]
    skipped: int = 0
    truncated: bool = False


def valid_id(value: Any) -> str | None:
    """A model id as we serve it: a string of 1-256 printable characters, no surrounding spaces."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_CHARS or value != value.strip():
        return None
    if not value.isprintable() or any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co") for c in value):
        return None
    return value


def positive_int(value: Any, bound: int = MAX_CONTEXT) -> int | None:
    """A positive integer no larger than `bound` (bool, float and strings are not)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= bound:
        return value
    return None


def _created(value: Any) -> int | None:
    return positive_int(value, 2**40)


def price_per_token(value: Any) -> Decimal | None:
    """An upstream's USD-per-token price (a decimal string or number) as USD per million tokens:
    finite, non-negative and bounded, else None."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    if isinstance(value, str) and (len(value) > 40 or not re.fullmatch(r"\s*[0-9.eE+-]+\s*", value)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    try:
        price = Decimal(str(value).strip()) * _MILLION
    except InvalidOperation:
        return None
    if not price.is_finite() or price < 0 or price > MAX_PRICE_MTOK:
        return None
    return price.normalize() if price else Decimal(0)


def _entries(obj: Any, key: str) -> list[Any] | None:
    if not isinstance(obj, dict):
        return None
    entries = obj.get(key)
    return entries if isinstance(entries, list) else None


def _bounded(found: list[Listed], entries: int) -> Listing:
    seen: dict[str, Listed] = {}
    for model in found:
        seen.setdefault(model.id, model)  # a repeated id: its first entry
    models = tuple(seen.values())
    truncated = len(models) > MAX_MODELS
    return Listing(models[:MAX_MODELS], skipped=entries - len(found), truncated=truncated)


def read_openai(obj: Any, *, prices: bool = False) -> Listing | None:
    """OpenAI's list and the fields vLLM, llama.cpp server and OpenRouter add; None: not a list.
    `prices`: take the upstream's `pricing` (only for an upstream whose prices are its bill)."""
    entries = _entries(obj, "data")
    if entries is None:
        return None
    found = []
    for entry in entries[: MAX_MODELS * 2]:
        if not isinstance(entry, dict) or (model_id := valid_id(entry.get("id"))) is None:
            continue
        meta = entry.get("meta")
        meta = meta if isinstance(meta, dict) else {}
        # llama.cpp: the context it serves (n_ctx, newer servers) before the one it was trained for
        context = (positive_int(entry.get("max_model_len")) or positive_int(entry.get("context_length"))
                   or positive_int(entry.get("context_window")) or positive_int(meta.get("n_ctx"))
                   or positive_int(meta.get("n_ctx_train")))
        arch = entry.get("architecture")
        modalities = arch.get("input_modalities") if isinstance(arch, dict) else None
        vision = ("image" in modalities) if isinstance(modalities, list) else None
        params = entry.get("supported_parameters")
        tools = ("tools" in params) if isinstance(params, list) else None
        found.append(Listed(model_id, context, _created(entry.get("created")), vision=vision, tools=tools,
                            price_mtok=_upstream_price(entry.get("pricing")) if prices else None))
    return _bounded(found, len(entries))


def _upstream_price(pricing: Any) -> tuple[Decimal, Decimal] | None:
    if not isinstance(pricing, dict):
        return None
    prompt, completion = price_per_token(pricing.get("prompt")), price_per_token(pricing.get("completion"))
    if prompt is None or completion is None:
        return None
    # Charges token counts cannot bill (per request, per image, per web search) or reasoning dearer
    # than output: billing the token prices alone would undercharge, so the price is unknown
    # (the operator may price the model in the config file). Cache prices are left out: OpenAI-shaped
    # usage reports no cache writes, so every uncached prompt token is billed at the prompt price.
    for extra in _UNBILLABLE:
        if extra in pricing and price_per_token(pricing[extra]) != 0:
            return None
    if "internal_reasoning" in pricing:
        reasoning = price_per_token(pricing["internal_reasoning"])
        if reasoning is None or reasoning > completion:
            return None
    return prompt, completion


def read_ollama_tags(obj: Any) -> Listing | None:
    """Ollama's `GET /api/tags`: `{"models": [{"name": "llama3.2:latest", "model": ..., ...}]}`."""
    entries = _entries(obj, "models")
    if entries is None:
        return None
    found = []
    for entry in entries[: MAX_MODELS * 2]:
        if not isinstance(entry, dict):
            continue
        model_id = valid_id(entry.get("model")) or valid_id(entry.get("name"))
        if model_id is not None:
            found.append(Listed(model_id, digest=valid_id(entry.get("digest"))))
    return _bounded(found, len(entries))


OLLAMA_CAPABILITIES = frozenset({"completion", "tools", "vision", "embedding", "thinking", "insert"})


def read_ollama_show(listed: Listed, obj: Any) -> Listed:
    """`POST /api/show`'s `model_info` (`<arch>.context_length`) and `capabilities` added to a model."""
    if not isinstance(obj, dict):
        return listed
    context = None
    info = obj.get("model_info")
    if isinstance(info, dict):
        arch = info.get("general.architecture")
        if isinstance(arch, str):
            context = positive_int(info.get(f"{arch}.context_length"))
        if context is None:  # the architecture key missing or odd: any `*.context_length`
            context = next((n for k, v in list(info.items())[:10_000]
                            if isinstance(k, str) and k.endswith(".context_length")
                            and (n := positive_int(v)) is not None), None)
    caps = obj.get("capabilities")
    if not isinstance(caps, list):
        return dataclasses.replace(listed, context_length=context or listed.context_length)
    known = {c for c in caps[:64] if isinstance(c, str) and c in OLLAMA_CAPABILITIES}
    return dataclasses.replace(
        listed, context_length=context or listed.context_length,
        embedding="embedding" in known and "completion" not in known,
        vision="vision" in known, tools="tools" in known)


LMSTUDIO_TYPES = {"llm": (False, False), "vlm": (False, True), "embeddings": (True, False)}


def read_lmstudio(obj: Any) -> Listing | None:
    """LM Studio's `GET /api/v0/models`: `type` llm/vlm/embeddings and `max_context_length`."""
    entries = _entries(obj, "data")
    if entries is None:
        return None
    found = []
    for entry in entries[: MAX_MODELS * 2]:
        if not isinstance(entry, dict) or (model_id := valid_id(entry.get("id"))) is None:
            continue
        kind_name = entry.get("type")
        kind = LMSTUDIO_TYPES.get(kind_name) if isinstance(kind_name, str) else None
        found.append(Listed(model_id, positive_int(entry.get("max_context_length")),
                            embedding=kind[0] if kind else None, vision=kind[1] if kind else None))
    return _bounded(found, len(entries))


def read_llamacpp_props(obj: Any) -> int | None:
    """llama.cpp server's `GET /props`: the context it serves (`default_generation_settings.n_ctx`)."""
    if not isinstance(obj, dict):
        return None
    settings = obj.get("default_generation_settings")
    served = positive_int(settings.get("n_ctx")) if isinstance(settings, dict) else None
    return served or positive_int(obj.get("n_ctx"))
