"""Which request parameters each kind of provider honours (for OpenRouter's `require_parameters`)."""

from __future__ import annotations

from collections.abc import Iterable

from ..catalog import ProviderSpec
from ..providers.registry import provider_type


def unsupported(spec: ProviderSpec, params: Iterable[str]) -> list[str]:
    """The parameters among `params` this provider would ignore or refuse (its type declares
    what it honours; OpenAI-compatible types honour everything but the spec's `drop_params`)."""
    supported = provider_type(spec.type).supported_params
    if supported is None:
        return sorted(p for p in params if p in spec.drop_params)
    return sorted(p for p in params if p not in supported)
