"""OpenAI-compatible providers are configuration, not code: a preset per well-known service.

A preset gives the default base URL, the environment variables that enable it with zero config
(as each vendor's own SDK reads them), the genai-prices provider id for its price table, and the
request parameters it rejects (dropped before sending).
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


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("openai", "openai", "OpenAI", "https://api.openai.com/v1", ("OPENAI_API_KEY",),
               "OPENAI_BASE_URL", "openai", vision_prefixes=("gpt-4o", "gpt-4.1", "gpt-5", "o1", "o3", "o4")),
        Preset("anthropic", "anthropic", "Anthropic", "https://api.anthropic.com", ("ANTHROPIC_API_KEY",),
               "ANTHROPIC_BASE_URL", "anthropic", vision_prefixes=("claude-",), model_filter=r"^claude-",
               family_aliases=(("claude-3-opus", r"^claude-opus-[\d-]+$"),
                               ("claude-3-sonnet", r"^claude-sonnet-[\d-]+$"),
                               ("claude-3-haiku-latest", r"^claude-haiku-[\d-]+$"))),
        Preset("gemini", "gemini", "Google Gemini", "https://generativelanguage.googleapis.com/v1beta",
               ("GEMINI_API_KEY", "GOOGLE_API_KEY"), "GEMINI_BASE_URL", "google",
               vision_prefixes=("gemini-",), model_filter=r"^gemini-",
               family_aliases=(("gemini-pro", r"^gemini-[\d.]+-pro$"), ("gemini-flash", r"^gemini-[\d.]+-flash$"))),
        Preset("groq", "openai", "Groq", "https://api.groq.com/openai/v1", ("GROQ_API_KEY",),
               prices_id="groq", drop_params=frozenset({"logit_bias", "top_logprobs", "store", "metadata"})),
        Preset("mistral", "openai", "Mistral AI", "https://api.mistral.ai/v1", ("MISTRAL_API_KEY",),
               prices_id="mistral",
               drop_params=frozenset({"user", "store", "metadata", "logit_bias", "service_tier"})),
        Preset("deepseek", "openai", "DeepSeek", "https://api.deepseek.com/v1", ("DEEPSEEK_API_KEY",),
               prices_id="deepseek"),
        Preset("together", "openai", "Together AI", "https://api.together.xyz/v1", ("TOGETHER_API_KEY",),
               prices_id="together"),
        Preset("fireworks", "openai", "Fireworks AI", "https://api.fireworks.ai/inference/v1",
               ("FIREWORKS_API_KEY",), prices_id="fireworks"),
        Preset("xai", "openai", "xAI", "https://api.x.ai/v1", ("XAI_API_KEY",), prices_id="x-ai"),
        Preset("cerebras", "openai", "Cerebras", "https://api.cerebras.ai/v1", ("CEREBRAS_API_KEY",),
               prices_id="cerebras"),
        Preset("perplexity", "openai", "Perplexity", "https://api.perplexity.ai", ("PERPLEXITY_API_KEY",),
               prices_id="perplexity"),
        Preset("openrouter", "openai", "OpenRouter", "https://openrouter.ai/api/v1", ("OPENROUTER_API_KEY",)),
    )
}

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
