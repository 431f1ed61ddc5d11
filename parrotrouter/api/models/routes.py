from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from ...catalog import ModelSpec
from ...errors import FailureKind, InvalidRequest, NotFound, PermissionDenied, UpstreamFailure, echo
from ...observe.performance import Bucket, performance_block, performance_of
from ...settings import parse_bool
from ...state import AppState
from ..request import app_state, authenticate

CAPABILITIES = ("chat", "completion", "function_calling", "vision", "embeddings", "json_mode")
# `?capability=` values: our capability names and the ParrotRouter docs' own. `image` is a model
# that takes images as input (vision): the gateway serves no image generation.
CAPABILITY_FILTERS = {**{c: c for c in CAPABILITIES}, "embedding": "embeddings", "image": "vision"}
# `?provider=` slugs of the docs and of OpenRouter-style ids, as our provider names.
PROVIDER_SLUGS = {"google": "gemini", "google-ai-studio": "gemini", "x-ai": "xai", "mistralai": "mistral",
                  "aws": "bedrock", "amazon-bedrock": "bedrock"}
# The endpoints a model serves, by capability: every inbound API of a chat model is served, in the
# deployment's own format where it speaks that API (`native_apis`), else translated.
CHAT_ENDPOINTS = ("/v1/chat/completions", "/v1/responses", "/v1/messages", "/v1/messages/count_tokens")


def endpoints(model: ModelSpec) -> list[str]:
    caps = model.capabilities
    served = list(CHAT_ENDPOINTS) if caps.chat else []
    if caps.completion:
        served.append("/v1/completions")
    if caps.embeddings:
        served.append("/v1/embeddings")
    return served


def model_status(state: AppState, model: ModelSpec) -> dict[str, Any]:
    """Active when one deployment is: its provider loaded and healthy, its breaker not open; else
    the first deployment's reason (never a URL or a credential)."""
    health = state.provider_health
    if health is None:
        active = any((p := state.providers.get(d.provider)) is not None and p.ready() for d in model.deployments)
        return {"active": active, "message": "available" if active else "no provider of this model is ready"}
    verdicts = [health.deployment(d.provider, d.id) for d in model.deployments]
    if any(v.healthy for v in verdicts):
        return {"active": True, "message": "available"}
    return {"active": False, "message": verdicts[0].message}


async def performance_stats(state: AppState) -> Bucket | None:
    performance = performance_of(state.observers)
    return None if performance is None else await performance.stats()


def pricing_object(model: ModelSpec) -> dict[str, Any] | None:
    """USD per 1k tokens and where the price came from (`source`); None when the price is unknown."""
    if model.pricing is None:
        return None
    out: dict[str, Any] = {k: float(v) if k != "unit" else v for k, v in model.pricing.per_1k().items()}
    out["source"] = model.price_source
    return out


def model_object(state: AppState, model: ModelSpec, stats: Bucket | None = None, *,
                 capabilities: bool = True) -> dict[str, Any]:
    first = model.deployments[0]
    spec = state.catalog.providers[first.provider]
    providers = [state.providers.get(d.provider) for d in model.deployments]
    body = {
        "id": model.id,
        "object": "model",
        "created": model.created,
        "owned_by": model.owned_by,
        "provider": {"id": spec.name, "name": spec.display_name},
        "pricing": pricing_object(model),
        "context_length": model.context_length,
        "max_tokens": model.max_output_tokens,
        "capabilities": model.capabilities.as_dict(),
        # the names that resolve to this model (a snapshot resolved on demand keeps its listed
        # model's names for the key's denied patterns only: they name that model, not this one)
        "aliases": [a for a in model.aliases if (r := state.catalog.listed(a)) is None or r.model.id == model.id],
        "deployments": [d.id for d in model.deployments],
        "endpoints": endpoints(model),
        "native_apis": sorted({dialect for p in providers if p is not None for dialect in p.native_dialects}),
        "status": model_status(state, model),
        "performance": None if stats is None else performance_block(stats.get(("m", model.id)),
                                                                     state.settings.performance_window),
        "retired": model.retired,
    }
    if not capabilities:
        del body["capabilities"]
    return body


def _flag(query: Mapping[str, str], name: str, default: bool) -> bool:
    try:
        return parse_bool(query.get(name, default))
    except ValueError:
        raise InvalidRequest(f"'{name}' must be true or false.", param=name) from None


async def list_models(http: web.Request) -> web.Response:
    policy = authenticate(http).policy
    state = app_state(http)
    query = http.query
    active_only = _flag(query, "active_only", True)
    include_retired = _flag(query, "include_retired", False)
    include_capabilities = _flag(query, "include_capabilities", True)
    wanted = query.get("capability")
    capability = None if wanted is None else CAPABILITY_FILTERS.get(wanted)
    if wanted is not None and capability is None:
        raise InvalidRequest(f"'capability' must be one of: {', '.join(CAPABILITY_FILTERS)}.", param="capability")
    provider = query.get("provider")
    provider = PROVIDER_SLUGS.get(provider, provider) if provider is not None else None
    stats = await performance_stats(state)
    data = []
    for model in state.catalog.models.values():
        if model.retired and not include_retired:
            continue
        if provider is not None and all(d.provider != provider for d in model.deployments):
            continue
        if capability is not None and not getattr(model.capabilities, capability):
            continue
        if not policy.allows_model(model.id):
            continue
        obj = model_object(state, model, stats, capabilities=include_capabilities)
        if active_only and not obj["status"]["active"]:
            continue
        data.append(obj)
    return web.Response(body=orjson.dumps({"object": "list", "data": data}), content_type="application/json")


async def get_model(http: web.Request) -> web.Response:
    policy = authenticate(http).policy
    state = app_state(http)
    name = http.match_info["model_id"]
    model = state.catalog.models.get(name)
    if model is None:
        try:
            model = state.catalog.resolve(name).model
        except InvalidRequest:
            raise NotFound(f"The model '{echo(name)}' does not exist on this gateway. "
                           "GET /v1/models lists the models you can use.", param="model") from None
    if not policy.allows_model(name, model.id):  # the very answer to a name the gateway does not know
        raise NotFound(f"The model '{echo(name)}' does not exist on this gateway. "
                       "GET /v1/models lists the models you can use.", param="model")
    body = model_object(state, model, await performance_stats(state),
                        capabilities=_flag(http.query, "include_capabilities", True))
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def delete_model(http: web.Request) -> web.Response:
    """OpenAI's `DELETE /v1/models/{model}`: delete one of the account's fine-tuned models at the
    provider that serves it. The provider's account is the operator's, so only the master key may.
    The model leaves the list when its provider's models are next listed."""
    if not authenticate(http, write=True).is_master:
        raise PermissionDenied("Only the master key can delete models.")
    state = app_state(http)
    name = http.match_info["model_id"]
    try:
        resolution = state.catalog.resolve(name)
    except InvalidRequest:
        raise NotFound(f"The model '{echo(name)}' does not exist on this gateway.", param="model") from None
    model = resolution.model
    # a pinned name (`provider/model`) names the deployment at that provider only
    loaded = [(d, p) for d in resolution.deployments() if (p := state.providers.get(d.provider)) is not None]
    if not loaded:
        raise NotFound(f"No provider of the model '{echo(name)}' is loaded.", param="model")
    deployment, provider = loaded[0]
    try:
        deleted = await provider.delete_model(deployment.upstream_model)
    except UpstreamFailure as exc:
        if exc.kind is FailureKind.NOT_FOUND:
            raise NotFound(f"The provider '{provider.name}' does not know the model '{echo(name)}'.",
                           param="model") from None
        raise exc.to_client_error() from None
    body = {"id": model.id, "object": "model", "deleted": deleted}
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model_id:.+}", get_model)
    app.router.add_delete("/v1/models/{model_id:.+}", delete_model)
