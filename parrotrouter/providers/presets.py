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
    # Short names (the ParrotRouter docs', the vendor's own): (alias, the one exact model id it
    # names). Fixed: an alias never moves to another model (a newer one, at another price). A
    # target the price table lists under another id (a dated id) is served by its own id.
    model_aliases: tuple[tuple[str, str], ...] = ()
    # Model discovery (parrotrouter/discovery/): how its GET /models is read ("openai", "ollama",
    # "lmstudio", "llamacpp", "openrouter"); None: not discovered unless configured.
    discover: str | None = None
    # Ids discovery keeps when the provider is at the preset's own base URL (e.g. OpenAI: `^ft:`, the
    # organisation's fine-tuned models the price table cannot list); None: every id.
    discover_filter: str | None = None
    local: bool = False  # a server of the operator's own: no key needed, its models are free
    url_envs: tuple[str, ...] = ()  # variables naming its URL; for a local preset, one set enables it
    # Models the vendor has shut down that the price table does not mark deprecated: (id, the
    # shutdown date, ISO). Retired from that date: hidden from lists, still resolvable by id.
    retired: tuple[tuple[str, str], ...] = ()

    def retired_ids(self, today: str) -> frozenset[str]:
        """The ids of `retired` shut down on or before `today` (an ISO date)."""
        return frozenset(model for model, date in self.retired if date <= today)


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


# OpenAI's text completion models: served on /v1/completions only (no chat).
_COMPLETION_ONLY = re.compile(r"^(gpt-3\.5-turbo-instruct(-\d{4})?|davinci-002|babbage-002)$")


def is_chat_model_id(model_id: str) -> bool:
    return _NOT_CHAT.search(model_id) is None


def is_completion_model_id(model_id: str) -> bool:
    """A text completion model (`gpt-3.5-turbo-instruct`, `davinci-002`, `babbage-002`)."""
    return _COMPLETION_ONLY.match(model_id) is not None


# OpenRouter's vendor slugs -> the provider that is the model's origin here (`google/gemini-2.5-pro`
# is Gemini's `gemini-2.5-pro`).
OPENROUTER_VENDORS = {"anthropic": "anthropic", "openai": "openai", "google": "gemini", "x-ai": "xai",
                      "mistralai": "mistral", "deepseek": "deepseek", "cohere": "cohere", "perplexity": "perplexity"}
_DOTTED_VERSION = re.compile(r"(?<=\d)\.(?=\d)")


def openrouter_origin(name: str) -> tuple[str, tuple[str, ...]] | None:
    """An OpenRouter-style id's origin: (the origin provider, the ids it may have there: the model
    part as written, then with OpenRouter's dotted versions dashed — `claude-sonnet-4.5` is
    Anthropic's `claude-sonnet-4-5`), or None when the vendor is none of ours."""
    vendor, _, model_part = name.partition("/")
    provider = OPENROUTER_VENDORS.get(vendor)
    if provider is None or not model_part:
        return None
    return provider, tuple(dict.fromkeys((model_part, _DOTTED_VERSION.sub("-", model_part))))
