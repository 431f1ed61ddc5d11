"""The provider registry: every kind of provider declares itself in one module, as one `ProviderType`.

A provider type says everything the rest of the gateway needs to know about it: the `type:` name
used in the config file, how to build the provider for a configured spec, the endpoints it serves
(chat, completions, embeddings: separate small interfaces in `providers/base.py`, no stubs), the
request parameters it honours (for OpenRouter's `require_parameters`), the schema of its own
`options:` in the config, its zero-config environment presets, and its models' default
capabilities.

Types are found through the `parrotrouter.providers` entry-point group — the built-ins register
there in pyproject.toml exactly as a third-party package would (the pattern of simonw/llm's
plugins):

```toml
[project.entry-points."parrotrouter.providers"]
mycloud = "mycloud_parrot:PROVIDER"       # a ProviderType
```
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

if TYPE_CHECKING:
    from ..catalog import Capabilities, ModelSpec, ProviderSpec
    from .base import Provider
    from .presets import Preset

log = logging.getLogger("parrotrouter.providers")

GROUP = "parrotrouter.providers"
Endpoint = Literal["chat", "completions", "embeddings"]


@dataclasses.dataclass(frozen=True)
class ProviderType:
    """One kind of provider, as its module declares it."""

    name: str  # the config file's `type:` (lowercase, unique)
    display_name: str
    build: Callable[[ProviderSpec], Provider]  # the provider for a configured (or preset) spec
    endpoints: frozenset[Endpoint] = frozenset({"chat"})
    # Request parameters it honours, for `provider.require_parameters`; None: every OpenAI
    # parameter except the spec's `drop_params` (OpenAI-compatible upstreams).
    supported_params: frozenset[str] | None = None
    # The schema of the provider's `options:` mapping in the config file (extra keys refused).
    options: type[BaseModel] | None = None
    # Zero-config: presets enabled from the environment as the vendor's own SDK reads it (and
    # the defaults a config-file provider of the same name inherits).
    presets: tuple[Preset, ...] = ()
    # A provider enabled by other means than an API key variable (e.g. the AWS credential
    # chain): specs to add from the environment; None: the presets' `key_envs` decide.
    from_env: Callable[[Mapping[str, str]], list[ProviderSpec]] | None = None
    # The zero-config models of its preset-named provider, when the type lists them itself (e.g.
    # Azure's deployment names, which users choose); None: the preset's price-table ids.
    env_models: Callable[[ProviderSpec, Mapping[str, str]], list[ModelSpec]] | None = None
    # Default capabilities of a model it serves, by model id (None: chat, tools, JSON mode).
    capabilities: Callable[[str, ProviderSpec], Capabilities] | None = None
    needs_base_url: bool = True  # a config-file provider without a preset must give base_url
    # The id the model's own vendor gives a model this type serves under another id (Bedrock's
    # `us.anthropic.claude-sonnet-4-5-20250929-v1:0` is Anthropic's `claude-sonnet-4-5-20250929`),
    # or None when it has none: the catalog makes one model of the two, with a deployment at
    # each provider. None (the field): the type serves models under their vendor's ids.
    canonical_id: Callable[[str], str | None] | None = None

    def parse_options(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """The validated `options:` (ValueError naming the problem when they are wrong)."""
        if self.options is None:
            if raw:
                raise ValueError(f"provider type '{self.name}' takes no options")
            return {}
        return self.options.model_validate(dict(raw)).model_dump()


@functools.cache
def provider_types() -> dict[str, ProviderType]:
    """Every registered provider type by name (loaded once)."""
    found: dict[str, ProviderType] = {}
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        try:
            declared = ep.load()
        except Exception:  # one broken plugin must not stop the gateway
            log.exception("cannot load provider type %r from %s", ep.name, ep.value)
            continue
        if not isinstance(declared, ProviderType):
            log.error("entry point %r (%s) is not a ProviderType", ep.name, ep.value)
            continue
        if declared.name in found:
            log.error("provider type %r is registered twice (%s); the first is kept", declared.name, ep.value)
            continue
        found[declared.name] = declared
    if not found:
        raise RuntimeError(f"no provider types are registered in the {GROUP!r} entry-point group: "
                           "install parrotrouter (pip install -e .) so its metadata exists")
    return found


def provider_type(name: str) -> ProviderType:
    types = provider_types()
    try:
        return types[name]
    except KeyError:
        raise ValueError(f"unknown provider type '{name}' (known: {', '.join(sorted(types))})") from None
