"""The `llamacpp` provider type: local GGUF files run in-process (declared without importing llama.cpp)."""

from __future__ import annotations

from ...catalog import Capabilities, ProviderSpec
from ..base import Provider
from ..registry import ProviderType


def _build(spec: ProviderSpec) -> Provider:
    from .provider import LlamaCppProvider

    return LlamaCppProvider(spec)


PROVIDER = ProviderType(
    name="llamacpp", display_name="Local (llama.cpp)", build=_build, endpoints=frozenset({"chat", "completions"}),
    supported_params=frozenset({"max_tokens", "max_completion_tokens", "stop", "temperature", "top_p", "n", "seed",
                                "presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs",
                                "response_format", "tools", "tool_choice", "echo", "suffix", "best_of"}),
    capabilities=lambda model_id, spec: Capabilities(completion=True, function_calling=False, json_mode=True),
    needs_base_url=False,
)
