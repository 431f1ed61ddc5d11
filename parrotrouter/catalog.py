"""What the gateway serves: providers, models and their deployments, and how names resolve.

Built once at start-up from the config file and the environment (see `config/loader.py`); read
on every request through `Catalog.resolve`, a dictionary lookup.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .errors import UnsupportedModel, echo
from .pricing import ModelPricing
from .settings import Secret

log = logging.getLogger("parrotrouter.catalog")


@dataclasses.dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float = 5.0
    first_token: float = 60.0
    idle: float = 60.0
    total: float = 600.0


@dataclasses.dataclass(frozen=True, slots=True)
class LocalModelFile:
    """A GGUF model run in-process by llama.cpp."""

    path: str
    context_length: int | None = None
    threads: int | None = None
    chat_format: str | None = None
    queue_size: int = 8


@dataclasses.dataclass(frozen=True, slots=True)
class HealthCheck:
    """A provider's active health probe as the config file sets it (None fields: the defaults)."""

    probe: bool | None = None  # None: on for self-hosted endpoints, off for cloud ones
    path: str | None = None  # GET {base_url}{path}; default /models
    url: str | None = None  # an absolute URL to GET instead
    interval: float | None = None  # seconds; default the `health_probe_interval` setting
    timeout: float | None = None  # seconds; default the `health_probe_timeout` setting


@dataclasses.dataclass(frozen=True, slots=True)
class ProviderSpec:
    name: str
    type: str  # openai | anthropic | gemini | llamacpp
    display_name: str
    base_url: str | None = None
    api_key: Secret | None = None
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    timeouts: Timeouts = Timeouts()
    max_connections: int = 0
    drop_params: frozenset[str] = frozenset()
    local: LocalModelFile | None = None
    region: str | None = None
    unix_socket: str | None = None  # reach base_url's host over this socket instead of TCP
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # the type's own, validated
    health_check: HealthCheck = HealthCheck()
    discover: bool | None = None  # list its models from GET /models (None: the default rule, discovery/)


@dataclasses.dataclass(frozen=True, slots=True)
class Capabilities:
    chat: bool = True
    completion: bool = False
    function_calling: bool = True
    vision: bool = False
    embeddings: bool = False
    json_mode: bool = True

    def as_dict(self) -> dict[str, bool]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True, slots=True)
class Deployment:
    provider: str
    upstream_model: str
    weight: float = 1.0
    pricing: ModelPricing | None = dataclasses.field(default=None, compare=False)
    region: str | None = None  # the provider's region, for geographic routing
    price_source: str | None = None  # where `pricing` came from: one of PRICE_SOURCES, None: unknown

    @property
    def id(self) -> str:
        return f"{self.provider}/{self.upstream_model}"


@dataclasses.dataclass(frozen=True, slots=True)
class ModelSpec:
    id: str
    deployments: tuple[Deployment, ...]
    aliases: tuple[str, ...] = ()
    context_length: int | None = None
    max_output_tokens: int | None = None
    capabilities: Capabilities = Capabilities()
    pricing: ModelPricing | None = None
    owned_by: str = "parrotrouter"
    created: int = 0
    strategy: str | None = None  # routing strategy for this model's deployments (default weighted)
    price_source: str | None = None  # where `pricing` came from: one of PRICE_SOURCES, None: unknown
    retired: bool = False  # the price table marks it deprecated: still served, hidden from lists
    discovered_from: str | None = None  # the provider whose GET /models listed it

    def price_of(self, deployment: Deployment) -> ModelPricing | None:
        """What a request served by `deployment` costs: its own price, else the model's (None: unknown)."""
        return deployment.pricing or self.pricing

    @property
    def local(self) -> bool:
        """Served in-process or by a local server, for free (its price source is "local")."""
        return self.price_source == "local"


@dataclasses.dataclass(frozen=True, slots=True)
class Resolution:
    """A requested model name resolved: the model, and the provider it is pinned to, if any."""

    model: ModelSpec
    pinned_provider: str | None = None

    def deployments(self) -> tuple[Deployment, ...]:
        if self.pinned_provider is None:
            return self.model.deployments
        return tuple(d for d in self.model.deployments if d.provider == self.pinned_provider)


AUTO = "auto"
# Where a price came from: the genai-prices table, the operator's config file (a price or
# `free: true`), the upstream's own model list, or a local model (free). None: unknown.
PRICE_SOURCES = ("table", "config", "upstream", "local")

MAX_NAME = 256  # a longer model name, or one with control characters, names nothing
DYNAMIC_NAMES = 4096  # names resolved on demand (and misses) remembered, least recently used first out

# A name the catalog does not list, resolved on demand (a dated id the price table knows, an
# OpenRouter-style id): the resolution, or None. Given the catalog to look other names up in.
Resolver = Callable[[str, "Catalog"], "Resolution | None"]


def well_formed(name: str) -> bool:
    """Whether `name` may name a model at all (bounded, printable)."""
    return 0 < len(name) <= MAX_NAME and name.isprintable()


class Catalog:
    """Models by public id. `auto` names the first model given (the loader's order: the config
    file's models, then the embedded local model, then models enabled from the environment).

    Names it does not list are asked of `resolver` (see `config/identity.py`), and the answers —
    misses too — kept in a bounded LRU: a client sending random names costs at most
    `DYNAMIC_NAMES` entries. `pinned` names a model's deployment at one provider by another name
    (a Bedrock id of a model Anthropic serves too): name -> (model id, provider). `auto_names`
    are names of `auto` (e.g. `openrouter/auto` when OpenRouter is not enabled)."""

    def __init__(self, providers: Iterable[ProviderSpec], models: Iterable[ModelSpec], *,
                 resolver: Resolver | None = None, pinned: Mapping[str, tuple[str, str]] | None = None,
                 auto_names: Iterable[str] = ()) -> None:
        self.providers: dict[str, ProviderSpec] = {p.name: p for p in providers}
        self._resolver = resolver
        self._pinned = dict(pinned or {})
        self.auto_names = frozenset({AUTO, *auto_names})
        self._dynamic: OrderedDict[str, Resolution | None] = OrderedDict()
        self.models, self._names = _index(models, self.auto_names, self._pinned)

    def replace(self, models: Iterable[ModelSpec]) -> None:
        """Serve `models` from now on (discovery's refresh): new dicts are built, then swapped in
        (never mutated in place), so a request resolving concurrently sees the old or the new list;
        names resolved on demand are forgotten (they may name a model that is gone)."""
        self.models, self._names = _index(models, self.auto_names, self._pinned)
        self.forget_dynamic()

    def resolve(self, name: str) -> Resolution:
        found = self._names.get(name)
        if found is None:
            found = self._resolve_dynamic(name)
        if found is None:
            raise UnsupportedModel(
                f"The model '{echo(name)}' is not available on this gateway. "
                "GET /v1/models lists the models you can use.",
                param="model",
            )
        return found

    def _resolve_dynamic(self, name: str) -> Resolution | None:
        if self._resolver is None or not well_formed(name):
            return None
        cache = self._dynamic
        if name in cache:
            cache.move_to_end(name)
            return cache[name]
        try:
            found = self._resolver(name, self)
        except Exception:  # a bug in a lookup is a miss for this name, not a failed request
            log.exception("cannot resolve the model name %r", echo(name))
            return None
        cache[name] = found
        if len(cache) > DYNAMIC_NAMES:
            cache.popitem(last=False)
        return found

    def forget_dynamic(self) -> None:
        """Drop the names resolved on demand (after the models change)."""
        self._dynamic = OrderedDict()

    def listed(self, name: str) -> Resolution | None:
        """`name` as the catalog lists it (an id, an alias, `auto`, a pinned deployment), or None:
        no on-demand resolution."""
        return self._names.get(name)

    def knows(self, name: str) -> bool:
        """Whether `name` names a model of this catalog (an id, an alias, `auto`, a pinned
        deployment, or a name resolved on demand)."""
        if name in self._names:
            return True
        try:
            self.resolve(name)
        except UnsupportedModel:
            return False
        return True

    def names(self) -> list[str]:
        return sorted(self._names)

    def describe(self) -> dict[str, Any]:
        return {"providers": sorted(self.providers), "models": sorted(self.models)}


def _index(models: Iterable[ModelSpec], auto_names: Iterable[str], pinned: Mapping[str, tuple[str, str]],
           ) -> tuple[dict[str, ModelSpec], dict[str, Resolution]]:
    """Models by id, and every name that resolves: ids, `auto` (and its other names), aliases,
    pinned deployments, and `pinned`'s names of a model's deployment at one provider."""
    by_id: dict[str, ModelSpec] = {}
    names: dict[str, Resolution] = {}
    for model in models:
        by_id[model.id] = model
        names[model.id] = Resolution(model)
    if by_id:
        first = names.setdefault(AUTO, Resolution(next(iter(by_id.values()))))
        for name in auto_names:
            names.setdefault(name, first)
    for model in by_id.values():
        for alias in model.aliases:
            names.setdefault(alias, Resolution(model))
        for dep in model.deployments:
            pinned_res = Resolution(model, dep.provider)
            names.setdefault(f"{dep.provider}/{model.id}", pinned_res)
            names.setdefault(dep.id, pinned_res)
    for name, (model_id, provider) in pinned.items():
        if model_id in by_id:
            names.setdefault(name, Resolution(by_id[model_id], provider))
    return by_id, names
