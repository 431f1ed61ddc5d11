"""Schema of the YAML configuration file (pydantic; validated once at start, never per request).

```yaml
server: {port: 8000, redis_url: ...}          # any setting from settings.py
providers:
  - name: openai
    type: openai                               # a registered provider type (providers/registry.py)
    base_url: https://api.openai.com/v1
    api_key: {$env: OPENAI_API_KEY}            # a reference, never an inline secret
    headers: {OpenAI-Organization: org-123}
    timeouts: {connect: 5, first_token: 60, idle: 60, total: 600}
models:
  - id: gpt-4o-mini
    aliases: [mini]
    deployments: [{provider: openai, model: gpt-4o-mini, weight: 1}]
    context_length: 128000
    max_output_tokens: 16384
    capabilities: {vision: true}
    pricing: {prompt: 0.15, completion: 0.60, unit: 1m_tokens}   # or `free: true`
```

A model without a price (none configured, none in the price table) is refused to keys that hold
credits; `pricing:` or `free: true` makes it usable by them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(_Strict):
    """A secret given by reference: `{$env: NAME}` or `{$file: /path}`."""

    env: str | None = Field(default=None, alias="$env")
    file: str | None = Field(default=None, alias="$file")

    @model_validator(mode="after")
    def _one_source(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of $env or $file")
        return self


def _secret_ref(value: Any) -> Any:
    if isinstance(value, str):
        raise ValueError(
            "secrets are given by reference, not inline: use {$env: VARIABLE_NAME} or {$file: PATH}"
        )
    return value


class Timeouts(_Strict):
    connect: Annotated[float, Field(gt=0)] = 5.0
    first_token: Annotated[float, Field(gt=0)] = 60.0
    idle: Annotated[float, Field(gt=0)] = 60.0
    total: Annotated[float, Field(gt=0)] = 600.0


class HealthCheckConfig(_Strict):
    """A provider's active health probe (README: Provider health and performance)."""

    probe: bool | None = None
    path: Annotated[str, Field(pattern=r"^/[!-~]{0,255}$")] | None = None
    url: Annotated[str, Field(max_length=2048)] | None = None
    interval: Annotated[float, Field(ge=0.1, le=86400)] | None = None
    timeout: Annotated[float, Field(gt=0, le=60)] | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value


class ProviderConfig(_Strict):
    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    type: Annotated[str, Field(min_length=1)]  # checked against the provider registry
    base_url: str | None = None
    unix_socket: str | None = None
    api_key: SecretRef | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    max_connections: Annotated[int, Field(ge=0)] = 0
    region: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)  # the provider type's own (its `options` schema)
    health_check: HealthCheckConfig = Field(default_factory=HealthCheckConfig)
    discover: bool | None = None  # serve the models its GET /models lists too (discovery/; default off)
    # llamacpp only
    path: str | None = None
    threads: Annotated[int, Field(ge=1)] | None = None
    queue_size: Annotated[int, Field(ge=1)] = 8
    chat_format: str | None = None
    context_length: Annotated[int, Field(ge=64)] | None = None

    _check_key = field_validator("api_key", mode="before")(_secret_ref)

    @field_validator("type")
    @classmethod
    def _registered(cls, value: str) -> str:
        from ..providers.registry import provider_type

        provider_type(value)  # ValueError naming the known types
        return value

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if value else value


class PricingConfig(_Strict):
    prompt: Annotated[Decimal, Field(ge=0)]
    completion: Annotated[Decimal, Field(ge=0)]
    cached_prompt: Annotated[Decimal, Field(ge=0)] | None = None
    unit: Literal["1m_tokens", "1k_tokens"] = "1m_tokens"


class DeploymentConfig(_Strict):
    provider: Annotated[str, Field(min_length=1)]
    model: Annotated[str, Field(min_length=1)] | None = None
    weight: Annotated[float, Field(gt=0)] = 1.0
    pricing: PricingConfig | None = None  # this deployment's own price, if it differs from the model's


class Capabilities(_Strict):
    chat: bool = True
    completion: bool = False
    function_calling: bool = True
    vision: bool = False
    embeddings: bool = False
    json_mode: bool = True


class ModelConfig(_Strict):
    id: Annotated[str, Field(min_length=1)]
    aliases: list[str] = Field(default_factory=list)
    deployments: Annotated[list[DeploymentConfig], Field(min_length=1)]
    context_length: Annotated[int, Field(ge=1)] | None = None
    max_output_tokens: Annotated[int, Field(ge=1)] | None = None
    capabilities: Capabilities | None = None
    pricing: PricingConfig | None = None
    free: bool = False  # the operator says it costs nothing (e.g. a self-hosted model): price 0, source config
    owned_by: str | None = None
    strategy: str | None = None  # a routing strategy (routing/strategies) or one of its aliases

    @model_validator(mode="after")
    def _one_price(self) -> ModelConfig:
        if self.free and self.pricing is not None:
            raise ValueError("give either pricing or free: true, not both")
        return self

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, value: str | None) -> str | None:
        from ..routing.strategies import ALIASES, STRATEGIES, strategy_name

        if value is None:
            return None
        found = strategy_name(value)
        if found is None:
            raise ValueError(f"unknown strategy '{value}'; use one of {', '.join(sorted({*STRATEGIES, *ALIASES}))}")
        return found


class ConfigFile(_Strict):
    server: dict[str, Any] = Field(default_factory=dict)
    providers: list[ProviderConfig] = Field(default_factory=list)
    models: list[ModelConfig] = Field(default_factory=list)
    env_providers: bool = True
