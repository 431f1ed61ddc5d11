"""Model identity: which model a name means, and which providers serve one model.

- `default_capabilities`: what a model does by default, by its id and its provider (a cloud's
  chat models serve chat only; its text completion models /v1/completions only; a self-hosted
  OpenAI-compatible server serves both).
- `with_aliases`: a preset's fixed aliases (`claude-3-opus` -> `claude-3-opus-20240229`); an
  alias names one exact model, never "the newest of a family".
- `merge`: the zero-config models of several providers that are one model (OpenAI's and Azure's
  `gpt-4o`, Anthropic's `claude-sonnet-4-5` and Bedrock's
  `global.anthropic.claude-sonnet-4-5-20250929-v1:0`) become one `ModelSpec` with a deployment
  at each, so failover, `X-Provider` and `provider.order` work without a config file.
- `NameResolver`: the names a catalog does not list, resolved on demand (the catalog keeps the
  answers in a bounded LRU): a dated or documented id the price table knows
  (`claude-3-opus-20240229`, `gpt-4-turbo-preview`, `gpt-4o-2024-08-06`), an OpenRouter-style
  id (`anthropic/claude-sonnet-4.5`, `openai/gpt-4o`, `openrouter/auto`).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Iterable, Mapping

from .. import catalog as cat
from ..errors import UnsupportedModel
from ..pricing import lookup_pricing, pricing_from_table, table_entry
from ..providers.embedding_models import EMBEDDING, embedding_pricing, is_embedding_model
from ..providers.presets import (
    OPENROUTER_VENDORS,
    Preset,
    all_presets,
    is_chat_model_id,
    is_completion_model_id,
)
from ..providers.registry import provider_type

log = logging.getLogger("parrotrouter.config.identity")

OPENROUTER = "openrouter"
OPENROUTER_AUTO = "openrouter/auto"
OPENROUTER_PRICES = "openrouter"  # genai-prices' table of OpenRouter's ids (`anthropic/claude-3-opus`)
# OpenRouter's vendor slugs -> the provider (preset) serving that vendor's models under their own ids.
VENDORS = OPENROUTER_VENDORS
# A text completion model: /v1/completions only.
COMPLETION_ONLY = cat.Capabilities(chat=False, completion=True, function_calling=False, json_mode=False)
_DOTTED_VERSION = re.compile(r"(?<=\d)\.(?=\d)")


# ---------------------------------------------------------------------- capabilities
def self_hosted(provider: cat.ProviderSpec) -> bool:
    """An OpenAI-compatible server of the operator's (a config-file provider without a preset,
    or a preset's provider pointed at another base URL: vLLM, Ollama, LM Studio...), not the
    cloud the preset names."""
    preset = all_presets().get(provider.name)
    if preset is None or preset.type != provider.type or not preset.base_url:
        return True
    return (provider.base_url or preset.base_url).rstrip("/") != preset.base_url.rstrip("/")


def default_capabilities(model_id: str, provider: cat.ProviderSpec) -> cat.Capabilities:
    ptype = provider_type(provider.type)
    if "embeddings" in ptype.endpoints and is_embedding_model(model_id):
        return EMBEDDING
    if ptype.capabilities is not None:
        return ptype.capabilities(model_id, provider)
    completions = "completions" in ptype.endpoints
    if completions and is_completion_model_id(model_id):
        return COMPLETION_ONLY
    preset = all_presets().get(provider.name)
    vision = bool(preset and model_id.startswith(preset.vision_prefixes))
    # a cloud serves /v1/completions for its text completion models only; a server of one's own
    # serves it for every model (vLLM, llama.cpp server, Ollama, LM Studio)
    return cat.Capabilities(vision=vision, completion=completions and self_hosted(provider))


def serves_table_id(preset: Preset, model_id: str, provider: cat.ProviderSpec) -> bool:
    """Whether a price-table id is one of the preset's zero-config chat (or text completion)
    models: another vendor's model under the type's own id (`canonical_id`) counts, version
    suffix and all (`global.anthropic.claude-sonnet-4-5-20250929-v1:0`)."""
    if preset.model_filter and not re.search(preset.model_filter, model_id):
        return False
    ptype = provider_type(provider.type)
    if ptype.canonical_id is not None and ptype.canonical_id(model_id) not in (None, model_id):
        return True
    return is_chat_model_id(model_id) or ("completions" in ptype.endpoints and is_completion_model_id(model_id))


# ---------------------------------------------------------------------- aliases
def with_aliases(models: list[cat.ModelSpec], provider: cat.ProviderSpec, preset: Preset,
                 taken: set[str]) -> list[cat.ModelSpec]:
    """The preset's fixed aliases on their target models. A target the list lacks is added
    when the price table prices it (`claude-3-opus-20240229`: sent upstream by that id); a
    listed model named like an alias gives way to it (the table's `claude-3-sonnet` is no id
    Anthropic's API takes: `claude-3-sonnet` names `claude-3-sonnet-20240229`)."""
    if not preset.model_aliases:
        return models
    out = list(models)
    applied: set[str] = set()
    for alias, target in preset.model_aliases:
        if alias in taken and not any(m.id == alias for m in out):
            continue  # the config file's name
        index = next((i for i, m in enumerate(out) if m.id == target), None)
        if index is None:
            if target in taken:
                continue
            made = table_model(target, provider, preset)
            if made is None:
                continue
            out.append(made)
            taken.add(target)
            index = len(out) - 1
        out[index] = dataclasses.replace(out[index], aliases=(*out[index].aliases, alias))
        applied.add(alias)
        taken.add(alias)
    return [m for m in out if m.id not in applied]


def table_model(model_id: str, provider: cat.ProviderSpec, preset: Preset) -> cat.ModelSpec | None:
    """`model_id` at `provider` as the price table describes it (None: the table does not know it)."""
    entry = table_entry(model_id, preset.prices_id)
    if entry is None:
        return None
    pricing = pricing_from_table(entry)
    return cat.ModelSpec(
        id=model_id, deployments=(cat.Deployment(provider.name, model_id, pricing=pricing, region=provider.region,
                                                 price_source="table"),),
        context_length=entry.context_window, capabilities=default_capabilities(entry.id, provider),
        pricing=pricing, owned_by=provider.name, price_source="table", retired=bool(entry.deprecated))


# ---------------------------------------------------------------------- one model, many providers
@dataclasses.dataclass
class Merged:
    models: list[cat.ModelSpec]
    pinned: dict[str, tuple[str, str]]  # a merged-away id -> (the model's id, its provider)


def merge(per_provider: Iterable[tuple[cat.ProviderSpec, list[cat.ModelSpec]]]) -> Merged:
    """One model per model: a model of a provider whose type names models otherwise
    (`ProviderType.canonical_id`) joins the model of its vendor's id — or of the price-table
    entry that id matches at another provider (Bedrock's `claude-sonnet-4-5-20250929` is the
    table's, and Anthropic's, `claude-sonnet-4-5`) — as one more deployment at its own price.
    Providers that name models by their vendors' ids come first, so the vendor's model keeps
    its id, capabilities and price; its deployment is tried first by `provider.order` only."""
    lists = list(per_provider)
    lists.sort(key=lambda item: provider_type(item[0].type).canonical_id is not None)  # stable
    by_id: dict[str, cat.ModelSpec] = {}
    pinned: dict[str, tuple[str, str]] = {}
    served_by: dict[str, set[str]] = {}  # provider -> the ids of its own models (its table's ids)
    for provider, models in lists:
        canonical = provider_type(provider.type).canonical_id
        for model in models:
            target = _merge_target(model, canonical, by_id, served_by, provider) if canonical else None
            if target is not None and not _priced_as_named(model, provider):
                # named after another model than it runs (Azure's `gpt-4o-mini=gpt-4o`, or one the
                # table cannot price): not that model; reachable by its provider's name, at its price
                log.warning("provider %s: model %r does not run the model it is named after; served as %r",
                            provider.name, model.id, f"{provider.name}/{model.id}")
                model, target = dataclasses.replace(model, id=f"{provider.name}/{model.id}"), None
            if target is None:
                if model.id not in by_id:
                    by_id[model.id] = model
                    served_by.setdefault(provider.name, set()).add(model.id)
                continue
            by_id[target] = _join(by_id[target], model)
            if model.id != target:
                pinned.setdefault(model.id, (target, provider.name))
    return Merged(list(by_id.values()), pinned)


def _priced_as_named(model: cat.ModelSpec, provider: cat.ProviderSpec) -> bool:
    """Whether the model is priced as the provider's price table prices its id: a deployment
    named after the model it runs (Azure's portal default, Bedrock's ids). Else it runs another
    model (Azure's `deployment=model`), or one whose price is unknown, under that name."""
    preset = all_presets().get(provider.name)
    if model.pricing is None or preset is None or preset.prices_id is None:
        return False
    priced = embedding_pricing if model.capabilities.embeddings else lookup_pricing
    expected = priced(model.id, preset.prices_id)
    return expected is not None and (expected.prompt_mtok, expected.completion_mtok) == (
        model.pricing.prompt_mtok, model.pricing.completion_mtok)


def _merge_target(model: cat.ModelSpec, canonical: Callable[[str], str | None], by_id: Mapping[str, cat.ModelSpec],
                  served_by: Mapping[str, set[str]], provider: cat.ProviderSpec) -> str | None:
    vendor_id = canonical(model.id)
    if not vendor_id:
        return None
    if vendor_id in by_id:
        return vendor_id
    presets = all_presets()
    for other, ids in served_by.items():  # the vendor's table knows the id under another name
        preset = presets.get(other)
        if other == provider.name or preset is None or preset.prices_id is None:
            continue
        entry = table_entry(vendor_id, preset.prices_id)
        if entry is not None and entry.id in ids:
            return str(entry.id)
    return None


def _join(model: cat.ModelSpec, other: cat.ModelSpec) -> cat.ModelSpec:
    seen = {d.id for d in model.deployments}
    deployments = (*model.deployments, *(d for d in other.deployments if d.id not in seen))
    aliases = (*model.aliases, *(a for a in other.aliases if a not in model.aliases and a != model.id))
    return dataclasses.replace(
        model, deployments=deployments, aliases=aliases, pricing=model.pricing or other.pricing,
        price_source=model.price_source or other.price_source,
        context_length=model.context_length or other.context_length)


# ---------------------------------------------------------------------- names resolved on demand
_WORD = re.compile(r"[^-._:/]+")
_VERSION_WORD = re.compile(r"v?\d+")  # a date, a snapshot number, `v2`
# words a snapshot's id adds to its model's without being another product
_SNAPSHOT_WORDS = frozenset({"preview", "latest", "chat", "beta"})


def same_product(name: str, entry_id: str) -> bool:
    """Whether `name` is a snapshot or documented id of the price-table entry its match clauses
    found (`gpt-4o-2024-08-06` of `gpt-4o`, `claude-3-opus-20240229` of `claude-3-opus-latest`),
    not another product the table's prefix match merely reaches (`gpt-4o-mini-search-preview`,
    billed per search too, is not `gpt-4o-mini`): every word of the name that is not a version
    must be a word of the entry's id, or one that marks a snapshot."""
    entry_words = set(_WORD.findall(entry_id.lower()))
    return all(word in entry_words or word in _SNAPSHOT_WORDS or _VERSION_WORD.fullmatch(word)
               for word in _WORD.findall(name.lower()))


def auto_names(providers: Mapping[str, cat.ProviderSpec]) -> tuple[str, ...]:
    """`openrouter/auto` is our `auto` unless OpenRouter itself is enabled."""
    return () if _openrouter(providers) else (OPENROUTER_AUTO,)


def _openrouter(providers: Mapping[str, cat.ProviderSpec]) -> cat.ProviderSpec | None:
    spec = providers.get(OPENROUTER)
    return spec if spec is not None and spec.type == "openai" else None


class NameResolver:
    """`Catalog`'s resolver of the names it does not list (the catalog caches the answers)."""

    def __call__(self, name: str, catalog: cat.Catalog) -> cat.Resolution | None:
        if "/" in name:
            return self._openrouter_style(name, catalog)
        model = self._other_vendors_id(name, catalog) or self._table_id(name, catalog)
        return None if model is None else cat.Resolution(model)

    # a provider's own id of another vendor's model ----------------------------------------
    @staticmethod
    def _other_vendors_id(name: str, catalog: cat.Catalog) -> cat.ModelSpec | None:
        """`us.anthropic.claude-sonnet-4-5-20250929-v1:0`: the model Anthropic calls
        `claude-sonnet-4-5-20250929`, at the provider whose id it is (Bedrock) only, by that id,
        at that provider's table price."""
        presets = all_presets()
        for provider in catalog.providers.values():
            canonical = provider_type(provider.type).canonical_id
            preset = presets.get(provider.name)
            if canonical is None or preset is None or preset.type != provider.type or preset.prices_id is None:
                continue
            vendor_id = canonical(name)
            if not vendor_id or vendor_id == name:
                continue
            entry = table_entry(name, preset.prices_id)
            if entry is None:
                continue
            try:
                model = catalog.resolve(vendor_id).model
            except UnsupportedModel:
                model = cat.ModelSpec(id=vendor_id, deployments=(), capabilities=default_capabilities(name, provider),
                                      context_length=entry.context_window, owned_by=provider.name)
            pricing = pricing_from_table(entry)
            deployment = cat.Deployment(provider.name, name, pricing=pricing, region=provider.region,
                                        price_source="table")
            # its names kept (unlisted: they do not resolve to it) so a key denied them is denied it
            names = model.aliases if model.id == vendor_id else (model.id, *model.aliases)
            return dataclasses.replace(model, deployments=(deployment,), pricing=pricing, price_source="table",
                                       aliases=names)
        return None

    # a dated or documented id -------------------------------------------------------------
    def _table_id(self, name: str, catalog: cat.Catalog) -> cat.ModelSpec | None:
        """Every enabled provider whose price table matches `name` (its match clauses know the
        dated and documented ids) to one of the provider's zero-config models serves it, by the
        name as written (the upstream knows its own ids), at that entry's price. Several can:
        each is a deployment, in the catalog's provider order."""
        presets = all_presets()
        deployments: list[cat.Deployment] = []
        like: cat.ModelSpec | None = None
        retired = False
        context: int | None = None
        for provider in catalog.providers.values():
            preset = presets.get(provider.name)
            ptype = provider_type(provider.type)
            if (preset is None or preset.type != provider.type or preset.prices_id is None
                    or ptype.env_models is not None or provider.name == OPENROUTER):
                continue
            entry = table_entry(name, preset.prices_id)
            if entry is None or not same_product(name, entry.id) or not serves_table_id(preset, entry.id, provider):
                continue
            listed = catalog.listed(entry.id)
            if like is None:
                like = listed.model if listed is not None else None
                retired, context = bool(entry.deprecated), entry.context_window
            deployments.append(cat.Deployment(provider.name, name, pricing=pricing_from_table(entry),
                                              region=provider.region, price_source="table"))
        if not deployments:
            return None
        first = catalog.providers[deployments[0].provider]
        return cat.ModelSpec(
            id=name, deployments=tuple(deployments), pricing=deployments[0].pricing, price_source="table",
            capabilities=like.capabilities if like is not None else default_capabilities(name, first),
            # the listed model it is a snapshot of, by its names: a key denied those is denied it too
            aliases=(like.id, *like.aliases) if like is not None and like.id != name else (),
            context_length=context or (like.context_length if like is not None else None),
            max_output_tokens=like.max_output_tokens if like is not None else None,
            owned_by=first.name, retired=retired)

    # vendor/model ---------------------------------------------------------------------------
    def _openrouter_style(self, name: str, catalog: cat.Catalog) -> cat.Resolution | None:
        """`anthropic/claude-sonnet-4.5`: the origin provider's model when it is enabled (the
        model part as written, else with OpenRouter's dotted versions dashed), plus OpenRouter's
        deployment of the id when OpenRouter is enabled and its price table knows the id."""
        openrouter = _openrouter(catalog.providers)
        if name == OPENROUTER_AUTO:
            if openrouter is None:
                return None  # the catalog's auto names cover it
            return cat.Resolution(cat.ModelSpec(
                id=name, deployments=(cat.Deployment(OPENROUTER, name, region=openrouter.region),),
                owned_by=OPENROUTER))
        vendor, _, model_part = name.partition("/")
        origin = self._origin_model(VENDORS.get(vendor), model_part, catalog)
        hosted = self._at_openrouter(name, openrouter)
        if origin is None and hosted is None:
            return None
        if origin is None:
            assert hosted is not None
            entry = table_entry(name, OPENROUTER_PRICES)
            return cat.Resolution(cat.ModelSpec(
                id=name, deployments=(hosted,), pricing=hosted.pricing, price_source="table", owned_by=OPENROUTER,
                context_length=entry.context_window if entry is not None else None,
                retired=bool(entry is not None and entry.deprecated)))
        if hosted is not None:
            origin = dataclasses.replace(origin, deployments=(*origin.deployments, hosted))
        return cat.Resolution(origin)

    @staticmethod
    def _origin_model(provider: str | None, model_part: str, catalog: cat.Catalog) -> cat.ModelSpec | None:
        if provider is None or provider not in catalog.providers or not model_part:
            return None
        candidates = tuple(dict.fromkeys((model_part, _DOTTED_VERSION.sub("-", model_part))))
        found = [catalog.listed(c) for c in candidates]  # a listed id first (as written, else dashed)
        for candidate in candidates:  # then one resolved on demand (the origin's ids have no "/":
            if "/" in candidate:      # `anthropic/anthropic/...` is not resolved level by level)
                continue
            try:
                found.append(catalog.resolve(candidate))
            except UnsupportedModel:
                continue
        for resolution in found:
            own = tuple(d for d in resolution.deployments() if d.provider == provider) if resolution else ()
            if resolution is not None and own:
                return dataclasses.replace(resolution.model, deployments=own)
        return None

    @staticmethod
    def _at_openrouter(name: str, openrouter: cat.ProviderSpec | None) -> cat.Deployment | None:
        if openrouter is None:
            return None
        entry = table_entry(name, OPENROUTER_PRICES)
        if entry is None or not same_product(name, entry.id):
            return None
        return cat.Deployment(OPENROUTER, name, pricing=pricing_from_table(entry), region=openrouter.region,
                              price_source="table")

