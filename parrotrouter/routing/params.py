"""Which request parameters each kind of provider honours (for OpenRouter's `require_parameters`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..catalog import ProviderSpec
from ..providers.registry import provider_type

# Always understood, whatever the provider: not "parameters" in OpenRouter's sense.
BASIC = frozenset({"model", "messages", "prompt", "stream", "stream_options", "user", "metadata", "models",
                   "provider", "route", "transforms", "plugins", "usage", "store", "service_tier"})
def sent_parameters(raw: Mapping[str, Any]) -> frozenset[str]:
    return frozenset(k for k, v in raw.items() if k not in BASIC and v is not None)


def unsupported(spec: ProviderSpec, params: Iterable[str]) -> list[str]:
    """The parameters among `params` this provider would ignore or refuse (its type declares
    what it honours; OpenAI-compatible types honour everything but the spec's `drop_params`)."""
    supported = provider_type(spec.type).supported_params
    if supported is None:
        return sorted(p for p in params if p in spec.drop_params)
    return sorted(p for p in params if p not in supported)
