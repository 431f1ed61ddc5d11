"""Presets: well-known services as configuration, not code.

A preset gives the default base URL, the environment variables that enable it with zero config
(as each vendor's own SDK reads them), the genai-prices provider id for its price table, and the
request parameters it rejects (dropped before sending). Each provider type declares its own
presets (`ProviderType.presets`); OpenAI-compatible services are presets of the `openai` type.
"""

from __future__ import annotations

import dataclasses
import re


@dataclasses.dataclass(frozen=True, slots=True)
class Preset:
    name: str
    type: str  # adapter type: openai | anthropic | gemini
    display_name: str
    base_url: str
    key_envs: tuple[str, ...]
    base_url_env: str | None = None
    prices_id: str | None = None
    drop_params: frozenset[str] = frozenset()
    vision_prefixes: tuple[str, ...] = ()
    model_filter: str | None = None  # the price table's ids this provider serves (regex)
    # Short names from the ParrotRouter docs: alias -> the family; it names the newest model of
    # that family in the price table.
    family_aliases: tuple[tuple[str, str], ...] = ()
    # Model discovery (parrotrouter/discovery/): how its GET /models is read ("openai", "ollama",
    # "lmstudio", "llamacpp", "openrouter"); None: not discovered unless configured.
    discover: str | None = None
    # Ids discovery keeps when the provider is at the preset's own base URL (e.g. OpenAI: `^ft:`, the
    # organisation's fine-tuned models the price table cannot list); None: every id.
    discover_filter: str | None = None
    local: bool = False  # a server of the operator's own: no key needed, its models are free
    url_envs: tuple[str, ...] = ()  # variables naming its URL; for a local preset, one set enables it


def all_presets() -> dict[str, Preset]:
    """Every registered provider type's presets, by name."""
    from .registry import provider_types

    return {preset.name: preset for ptype in provider_types().values() for preset in ptype.presets}


# Ids in the price table that are not chat models (speech, images, embeddings, fine-tune patterns).
_NOT_CHAT = re.compile(
    r"(tts|transcribe|whisper|image|dall-e|embed|moderation|realtime|audio|computer-use|ocr|guard|"
    r"orpheus|voice|^ft:|:|-$|^(ada|babbage|curie|davinci)(-\d+)?$|turbo-instruct$)",
    re.IGNORECASE,
)


def is_chat_model_id(model_id: str) -> bool:
    return _NOT_CHAT.search(model_id) is None


def version_key(model_id: str) -> tuple[int, ...]:
    """Numbers in a model id, for "newest of the family" (claude-opus-4-5 > claude-opus-4-1)."""
    return tuple(int(n) for n in re.findall(r"\d+", model_id))


def newest(ids: list[str], family: str) -> str | None:
    matching = [i for i in ids if re.search(family, i)]
    return max(matching, key=version_key) if matching else None
