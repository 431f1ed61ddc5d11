"""Which providers discover their models, what a discovered model is, and how it joins the catalog.

The rule (the `discover_models` setting `auto`, the default), for OpenAI-compatible providers:

- local servers (the Ollama, LM Studio, vLLM and llama.cpp server presets): every model, free;
- a cloud preset at a URL of the operator's own (`OPENAI_BASE_URL` pointing at a vLLM, say): every
  model, priced from the preset's price table where it knows the id, else free when the URL is on
  this machine (a loopback address: the operator's own server), else price unknown;
- OpenAI itself: only fine-tuned models (`ft:` ids, the organisation's own, which the price table
  cannot list; priced where the table matches them, else unknown);
- OpenRouter: every model, at the prices its /models states;
- other clouds: none (their price table is the better list);
- a provider of the config file: only with `discover: true`.

`discover_models: none` turns discovery off; a comma-separated list of provider names discovers
exactly those (every model of each). Discovered models never shadow a model of the config file or of
the price table, nor one another: the first claim on an id or a name wins (`assemble`).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import urlsplit

from ..catalog import AUTO, Capabilities, Deployment, ModelSpec, ProviderSpec
from ..pricing import FREE, ModelPricing, lookup_pricing
from ..providers.embedding_models import EMBEDDING, embedding_pricing, is_embedding_model
from ..providers.presets import all_presets, is_chat_model_id, openrouter_origin
from . import wire
from .fetch import Source

log = logging.getLogger("parrotrouter.discovery")

AUTO_SETTING, NONE_SETTING = "auto", "none"
DISCOVERING_TYPES = frozenset({"openai"})  # provider types whose upstream speaks GET /models
COMPLETIONS_ONLY = Capabilities(chat=False, completion=True, function_calling=False, json_mode=False)
_COMPLETIONS_BASES = re.compile(r"^ft:(davinci|babbage)-002(:|$)")

OPENROUTER = "openrouter"  # the provider (and preset) whose discovered ids may join their origin's model


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    """One provider's discovery: where to list, and how to price and judge what it lists."""

    source: Source
    local: bool  # the operator's own server: models free
    prices_id: str | None  # the price table to price discovered ids from (None: unknown)
    upstream_prices: bool  # the upstream's /models prices are its bill (OpenRouter)
    cloud: bool  # a cloud API at its own URL: ids of speech, image or moderation models are skipped
    completions: bool  # its models serve /v1/completions too
    vision_prefixes: tuple[str, ...] = ()
    # a server on this machine (loopback address): a model the price table does not know is the
    # operator's own, free; a table id (a local proxy of a cloud) keeps the table's price
    loopback: bool = False


def _on_loopback(base_url: str) -> bool:
    host = (urlsplit(base_url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plan_for(spec: ProviderSpec, setting: str) -> Plan | None:
    """How the provider discovers its models, or None when it does not."""
    preset = all_presets().get(spec.name)
    if preset is not None and preset.type != spec.type:
        preset = None
    if setting == NONE_SETTING:
        return None
    listed = setting != AUTO_SETTING
    wanted = spec.name in setting.split(",") if listed else spec.discover
    if wanted is None:  # the default rule
        wanted = preset is not None and preset.discover is not None
    if not wanted or spec.base_url is None:
        return None
    if spec.type not in DISCOVERING_TYPES or spec.unix_socket:
        if listed or spec.discover:
            log.warning("provider %s: model discovery needs an OpenAI-compatible provider over TCP; skipped",
                        spec.name)
        return None
    # A cloud preset at its own URL (not OPENAI_BASE_URL pointing elsewhere): its filter applies
    # unless the operator asked for this provider by name, and ids of non-chat models are skipped.
    own_url = preset is not None and not preset.local and spec.base_url == preset.base_url.rstrip("/")
    headers = dict(spec.headers)
    if spec.api_key:
        headers["Authorization"] = f"Bearer {spec.api_key.reveal()}"
    dialect = preset.discover if preset is not None and preset.discover else "openai"
    keep = None
    if preset is not None and own_url and spec.discover is None and not listed:
        keep = preset.discover_filter
    return Plan(Source(spec.name, dialect, spec.base_url, headers, keep),
                local=preset is not None and preset.local,
                prices_id=preset.prices_id if preset is not None else None,
                upstream_prices=dialect == "openrouter", cloud=own_url,
                # a cloud's own API serves /v1/completions for few models (OpenAI: none of its chat
                # models); OpenRouter and OpenAI-compatible servers (vLLM, llama.cpp, Ollama...) do
                completions=not own_url or dialect == "openrouter",
                vision_prefixes=preset.vision_prefixes if preset is not None else (),
                loopback=not own_url and _on_loopback(spec.base_url))


def plans(providers: Iterable[ProviderSpec], setting: str) -> list[Plan]:
    specs = list(providers)
    if setting not in (AUTO_SETTING, NONE_SETTING):
        unknown = sorted(set(setting.split(",")) - {s.name for s in specs})
        if unknown:
            log.warning("discover_models names providers that are not enabled: %s", ", ".join(unknown))
    return [p for spec in specs if (p := plan_for(spec, setting)) is not None]


def _price(plan: Plan, listed: wire.Listed, embedding: bool) -> tuple[ModelPricing | None, str | None]:
    if plan.local:
        return FREE, "local"
    if plan.upstream_prices and listed.price_mtok is not None:
        return ModelPricing(prompt_mtok=listed.price_mtok[0], completion_mtok=listed.price_mtok[1]), "upstream"
    if plan.prices_id is not None:
        table = embedding_pricing(listed.id, plan.prices_id) if embedding else lookup_pricing(listed.id,
                                                                                               plan.prices_id)
        if table is not None:
            return table, "table"
    if plan.loopback:
        return FREE, "local"
    return None, None


def _capabilities(plan: Plan, listed: wire.Listed, embedding: bool) -> Capabilities:
    if embedding:
        return EMBEDDING
    if _COMPLETIONS_BASES.search(listed.id):
        return COMPLETIONS_ONLY
    vision = listed.vision
    if vision is None:  # the upstream did not say: the preset's vision families (ft: of one included)
        vision = bool(plan.vision_prefixes) and listed.id.removeprefix("ft:").startswith(plan.vision_prefixes)
    return Capabilities(chat=True, completion=plan.completions,
                        function_calling=listed.tools if listed.tools is not None else True, vision=vision)


def discovered_models(plan: Plan, spec: ProviderSpec, listing: wire.Listing) -> list[ModelSpec]:
    """The models a provider's listing names, as catalog models of that provider."""
    out = []
    for listed in listing.models:
        if listed.id == AUTO:
            continue
        embedding = listed.embedding if listed.embedding is not None else is_embedding_model(listed.id)
        if plan.cloud and not (embedding or listed.id.startswith("ft:") or is_chat_model_id(listed.id)):
            continue
        pricing, source = _price(plan, listed, embedding)
        aliases = (listed.id.removesuffix(":latest"),) if plan.source.dialect == "ollama" \
            and listed.id.endswith(":latest") else ()
        out.append(ModelSpec(
            id=listed.id, aliases=aliases,
            deployments=(Deployment(spec.name, listed.id, pricing=pricing, region=spec.region,
                                    price_source=source),),
            context_length=listed.context_length, capabilities=_capabilities(plan, listed, embedding),
            pricing=pricing, owned_by=spec.name, created=listed.created or 0, price_source=source,
            discovered_from=spec.name))
    return out


def _names(model: ModelSpec) -> list[str]:
    return [model.id, *model.aliases, *(n for d in model.deployments for n in (f"{d.provider}/{model.id}", d.id))]


def assemble(base: Sequence[ModelSpec], discovered: Mapping[str, Sequence[ModelSpec]]) -> list[ModelSpec]:
    """The catalog's models: `base` (config file, price table, local models) first and unchanged,
    then each provider's discovered models whose id no earlier model claims (as an id, an alias or a
    pinned deployment name); a discovered alias already taken is dropped. An OpenRouter id of a
    model whose origin provider is enabled (`anthropic/claude-sonnet-4.5` with Anthropic's
    `claude-sonnet-4-5` listed) is not a model of its own but OpenRouter's deployment of the
    origin's model (sent as OpenRouter's id, at OpenRouter's price; the id becomes an alias), when
    OpenRouter states a price for it — an unpriced deployment would be billed at the origin's."""
    taken = {name for model in base for name in _names(model)}
    taken.add(AUTO)
    out = list(base)
    where = {model.id: i for i, model in enumerate(out)}
    for models in discovered.values():
        for model in models:
            if model.id in taken:
                continue
            joined = _origin_index(model, out, where)
            if joined is not None:
                origin = out[joined]
                out[joined] = dataclasses.replace(origin, aliases=(*origin.aliases, model.id),
                                                  deployments=(*origin.deployments, *model.deployments))
                taken.update(_names(out[joined]))
                continue
            model = dataclasses.replace(model, aliases=tuple(a for a in model.aliases if a not in taken))
            where[model.id] = len(out)
            out.append(model)
            taken.update(_names(model))
    return out


def _origin_index(model: ModelSpec, models: Sequence[ModelSpec], where: Mapping[str, int]) -> int | None:
    """Where in `models` the origin model of an OpenRouter model is (see `assemble`), or None."""
    if model.discovered_from != OPENROUTER or model.pricing is None or len(model.deployments) != 1:
        return None
    origin = openrouter_origin(model.id)
    if origin is None:
        return None
    provider, candidates = origin
    for candidate in candidates:
        i = where.get(candidate)
        if i is not None and any(d.provider == provider for d in models[i].deployments):
            return i
    return None
