"""Which request parameters each kind of provider honours (for OpenRouter's `require_parameters`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..catalog import ProviderSpec

# Always understood, whatever the provider: not "parameters" in OpenRouter's sense.
BASIC = frozenset({"model", "messages", "prompt", "stream", "stream_options", "user", "metadata", "models",
                   "provider", "route", "transforms", "plugins", "usage", "store", "service_tier"})
SUPPORTED = {
    "anthropic": frozenset({"max_tokens", "max_completion_tokens", "stop", "tools", "tool_choice",
                            "parallel_tool_calls", "response_format", "reasoning_effort", "reasoning"}),
    "gemini": frozenset({"max_tokens", "max_completion_tokens", "stop", "tools", "tool_choice", "temperature",
                         "top_p", "n", "seed", "presence_penalty", "frequency_penalty", "response_format",
                         "reasoning_effort", "reasoning"}),
    "llamacpp": frozenset({"max_tokens", "max_completion_tokens", "stop", "temperature", "top_p", "n", "seed",
                           "presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs",
                           "response_format", "tools", "tool_choice", "echo", "suffix", "best_of"}),
}


def sent_parameters(raw: Mapping[str, Any]) -> frozenset[str]:
    return frozenset(k for k, v in raw.items() if k not in BASIC and v is not None)


def unsupported(spec: ProviderSpec, params: Iterable[str]) -> list[str]:
    """The parameters among `params` this provider would ignore or refuse."""
    if spec.type == "openai":
        return sorted(p for p in params if p in spec.drop_params)
    supported = SUPPORTED.get(spec.type, frozenset())
    return sorted(p for p in params if p not in supported)
