"""What the gateway serves: providers, models and their deployments, and how names resolve.

Built once at start-up from the config file and the environment (see `config/loader.py`); read
on every request through `Catalog.resolve`, a dictionary lookup.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import UnsupportedModel, echo
from .pricing import ModelPricing
from .settings import Secret


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
    retired: bool = False  # the price table marks it deprecated: hidden from /v1/models by default

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


class Catalog:
    """Models by public id. `auto` names the first model given (the loader's order: the config
    file's models, then the embedded local model, then models enabled from the environment)."""

    def __init__(self, providers: Iterable[ProviderSpec], models: Iterable[ModelSpec]) -> None:
        self.providers: dict[str, ProviderSpec] = {p.name: p for p in providers}
        self.models: dict[str, ModelSpec] = {}
        self._names: dict[str, Resolution] = {}
        for model in models:
            self.models[model.id] = model
            self._names[model.id] = Resolution(model)
        if self.models:
            self._names.setdefault(AUTO, Resolution(next(iter(self.models.values()))))
        for model in self.models.values():
            for alias in model.aliases:
                self._names.setdefault(alias, Resolution(model))
            for dep in model.deployments:
                pinned = Resolution(model, dep.provider)
                self._names.setdefault(f"{dep.provider}/{model.id}", pinned)
                self._names.setdefault(dep.id, pinned)

    def resolve(self, name: str) -> Resolution:
        found = self._names.get(name)
        if found is None:
            raise UnsupportedModel(
                f"The model '{echo(name)}' is not available on this gateway. "
                "GET /v1/models lists the models you can use.",
                param="model",
            )
        return found

    def knows(self, name: str) -> bool:
        """Whether `name` names a model of this catalog (an id, an alias, `auto`, a pinned deployment)."""
        return name in self._names

    def names(self) -> list[str]:
        return sorted(self._names)

    def describe(self) -> dict[str, Any]:
        return {"providers": sorted(self.providers), "models": sorted(self.models)}
