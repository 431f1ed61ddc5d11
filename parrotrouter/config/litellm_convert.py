"""The conversion of `config import-litellm`: a parsed LiteLLM proxy config as our configuration.

LiteLLM's `model_list` entries become models (entries sharing a `model_name` are deployments of one
model) on providers, one per distinct upstream (type, base URL, key, options: litellm_providers.py);
`router_settings`, `litellm_settings` and `general_settings` become `server:` settings where we have
an equivalent (litellm_settings.py). Whatever cannot be mapped is a `Finding` (litellm_report.py),
never dropped silently; a wrongly typed value is a problem naming its place, and the conversion fails.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ..errors import ConfigError
from ..pricing import lookup_pricing
from ..providers.presets import all_presets
from .litellm_providers import KINDS, Level, Upstream, env_name, is_env_ref, upstream_of
from .litellm_report import TOP_SECTIONS, Conversion, Finding, printable
from .litellm_settings import read_general, read_litellm_settings, read_router

MAX_NAME = 256
MAX_PRICE_PER_TOKEN = 1.0  # USD: a million per million tokens, our bound on any price



def convert(doc: Any, source: str = "LiteLLM config") -> Conversion:
    """Convert a parsed LiteLLM config; raises ConfigError naming every wrongly typed value."""
    converter = Converter(source)
    config = converter.run(doc)
    if converter.problems:
        raise ConfigError(converter.problems, source)
    return Conversion(config, tuple(converter.findings), source)


_MODES: dict[str, dict[str, bool] | None] = {
    "chat": None,  # the defaults
    "responses": None,
    "completion": {"chat": False, "completion": True, "function_calling": False, "json_mode": False},
    "embedding": {"chat": False, "embeddings": True, "function_calling": False, "json_mode": False},
}
_SUPPORTS = {"supports_function_calling": "function_calling", "supports_vision": "vision",
             "supports_response_schema": "json_mode"}
# litellm_params read by `_upstream` (litellm_providers.py) or by the deployment below.
_DEPLOYMENT_PARAMS = {"model", "weight", "rpm", "tpm", "order", "timeout", "stream_timeout", "max_tokens",
                      "input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost",
                      "litellm_credential_name", *_SUPPORTS}
_MODEL_INFO = {"id", "mode", "base_model", "max_input_tokens", "max_output_tokens", "max_tokens",
               "input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost", *_SUPPORTS}



@dataclasses.dataclass
class _Deployment:
    where: str
    upstream: Upstream
    provider: str = ""
    weight: float | None = None
    rpm: float | None = None
    tpm: float | None = None
    order: int | None = None
    pricing: dict[str, Any] | None = None


@dataclasses.dataclass
class _Model:
    name: str
    where: str
    deployments: list[_Deployment] = dataclasses.field(default_factory=list)
    aliases: list[str] = dataclasses.field(default_factory=list)
    fields: dict[str, Any] = dataclasses.field(default_factory=dict)  # context_length, capabilities, ...


class Converter:
    """One conversion's state: what was read so far, the findings and the problems."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []
        self.findings: list[Finding] = []
        self.server: dict[str, Any] = {}
        self.providers: dict[str, dict[str, Any]] = {}  # by name
        self._provider_by_identity: dict[tuple[Any, ...], str] = {}
        self._inline_keys: dict[str, str] = {}  # provider -> where its key was written in the file
        self.models: dict[str, _Model] = {}
        self.env_providers = False
        self.credentials: dict[str, Mapping[str, Any]] = {}
        self.server_strategy: str | None = None  # router_settings.routing_strategy, as ours

    # -- reporting and typed reads

    def found(self, level: Level, where: str, message: str) -> None:
        self.findings.append(Finding(level, printable(where), printable(message)))

    def problem(self, where: str, message: str) -> None:
        self.problems.append(printable(f"{where}: {message}"))

    def mapping(self, value: Any, where: str) -> Mapping[str, Any] | None:
        """A mapping with string keys (None, when absent: empty); None (and a problem) otherwise."""
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.problem(where, f"must be a mapping, not {_kind(value)}")
            return None
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            self.problem(where, f"keys must be strings, not {_kind(bad[0])}")
            return None
        return value

    def number(self, value: Any, where: str, *, positive: bool = False, maximum: float | None = None) -> float | None:
        """A finite number ≥ 0 (> 0 when `positive`, ≤ `maximum`); None (and a problem) otherwise."""
        if is_env_ref(value):
            self.found("unmapped", where, "a number read from the environment: write the number in by hand")
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.problem(where, f"must be a number, not {_kind(value)}")
            return None
        if value < 0 or (positive and value == 0):
            self.problem(where, f"must be {'more than 0' if positive else '0 or more'}, not {value}")
            return None
        if maximum is not None and value > maximum:
            self.problem(where, f"must be at most {maximum:g}, not {value}")
            return None
        return float(value)

    def name(self, value: Any, where: str) -> str | None:
        """A name (model, credential, alias): 1-256 printable characters; None (and a problem) otherwise."""
        if not isinstance(value, str) or not value.strip():
            self.problem(where, f"must be a non-empty string, not {_kind(value)}")
            return None
        if len(value) > MAX_NAME or not value.isprintable():
            self.problem(where, f"must be at most {MAX_NAME} printable characters")
            return None
        return value

    # -- the document

    def run(self, doc: Any) -> dict[str, Any]:
        """The whole document, section by section: our configuration's contents."""
        top = self.mapping(doc, "(top level)") if doc is not None else {}
        if top is None:
            return {}
        for key in top:
            if key not in TOP_SECTIONS:
                self.found("unmapped", key, "not a setting ParrotRouter has (a LiteLLM feature without equivalent)")
        self.read_credentials(top.get("credential_list"))
        self.read_model_list(top.get("model_list"))
        router = self.mapping(top.get("router_settings"), "router_settings") or {}
        litellm = self.mapping(top.get("litellm_settings"), "litellm_settings") or {}
        general = self.mapping(top.get("general_settings"), "general_settings") or {}
        read_router(self, router)
        read_litellm_settings(self, litellm, router)
        read_general(self, general)
        self.read_environment(top.get("environment_variables"))
        return self.assemble()

    def read_credentials(self, value: Any) -> None:
        """credential_list: values a deployment takes in with litellm_credential_name."""
        if value is None:
            return
        if not isinstance(value, list):
            self.problem("credential_list", f"must be a list, not {_kind(value)}")
            return
        for i, item in enumerate(value):
            entry = self.mapping(item, f"credential_list[{i}]")
            if entry is None:
                continue
            name = self.name(entry.get("credential_name"), f"credential_list[{i}].credential_name")
            values = self.mapping(entry.get("credential_values"), f"credential_list[{i}].credential_values")
            if name is not None and values is not None:
                self.credentials[name] = values

    def read_environment(self, value: Any) -> None:
        """environment_variables: never copied (secrets); their names are reported."""
        env = self.mapping(value, "environment_variables")
        if env:
            self.found("action", "environment_variables",
                       f"not copied (they may hold secrets): set {', '.join(sorted(env))} in the environment "
                       "ParrotRouter runs in, if it needs them")

    def read_model_list(self, value: Any) -> None:
        """model_list, entry by entry."""
        if value is None:
            self.found("note", "model_list", "missing: no models are configured")
            return
        if not isinstance(value, list):
            self.problem("model_list", f"must be a list, not {_kind(value)}")
            return
        for i, item in enumerate(value):
            self.read_entry(i, item)

    def read_entry(self, i: int, item: Any) -> None:
        """One model_list entry: a deployment of the model it names (or a finding saying why not)."""
        where = f"model_list[{i}]"
        entry = self.mapping(item, where)
        if entry is None:
            return
        for key in entry:
            if key not in ("model_name", "litellm_params", "model_info"):
                self.found("unmapped", f"{where}.{key}", "not a model_list field (LiteLLM reads it from litellm_params)"
                           if key in ("rpm", "tpm") else "unknown model_list field")
        # A bad name is a problem, and the conversion fails; the rest is still read, so that every
        # problem is reported at once.
        name = self.name(entry.get("model_name"), f"{where}.model_name") or f"(model_list[{i}])"
        params = self.mapping(entry.get("litellm_params"), f"{where}.litellm_params")
        info = self.mapping(entry.get("model_info"), f"{where}.model_info")
        if params is None or info is None:
            return
        params = self.with_credential(params, f"{where}.litellm_params")
        if "*" in name and name != "*" and not name.endswith("/*"):
            self.found("unmapped", f"{where}.model_name", f"'{name[:80]}' is a pattern of requested names: "
                       "ParrotRouter serves models by id and alias, not by pattern (name the model and list its "
                       "aliases); this entry is left out")
            return
        mode = info.get("mode")
        if isinstance(mode, str) and mode not in _MODES:
            self.found("unmapped", f"{where}.model_info.mode", f"'{mode[:40]}' models are not served (ParrotRouter "
                       "serves chat, completion and embedding models): this entry is left out")
            return
        upstream = upstream_of(self, params, f"{where}.litellm_params")
        if upstream is None:
            return
        if upstream.wildcard or name == "*" or name.endswith("/*"):
            self.wildcard(name, upstream, where)
            return
        dep = self.deployment(params, upstream, f"{where}.litellm_params")
        dep.provider = self.provider_for(upstream, f"{where}.litellm_params")
        model = self.models.get(name)
        if model is None:
            model = self.models[name] = _Model(name, where)
        model.deployments.append(dep)
        self.model_fields(model, params, info, upstream, where)

    def with_credential(self, params: Mapping[str, Any], where: str) -> Mapping[str, Any]:
        """The entry's litellm_params over the credential_list entry it names, if any."""
        ref = params.get("litellm_credential_name")
        if ref is None:
            return params
        if not isinstance(ref, str) or ref not in self.credentials:
            self.problem(f"{where}.litellm_credential_name", f"names no credential_list entry: {ref!r:.60}")
            return params
        return {**self.credentials[ref], **params}

    def wildcard(self, name: str, upstream: Upstream, where: str) -> None:
        """A `*` or `provider/*` entry: providers from the environment serve their own models."""
        self.env_providers = True
        if upstream.kind is not None:
            provider = self.provider_for(upstream, f"{where}.litellm_params")
            self.found("note", where, f"wildcard '{name}': provider '{provider}' is configured and env_providers "
                       "is on; /v1/models lists what it serves by their own ids (an id it does not list needs a "
                       "models entry)")
        else:
            self.found("note", where, f"wildcard '{name}': every provider enabled from the environment "
                       "(env_providers: true) serves its models by their own ids")

    def deployment(self, params: Mapping[str, Any], upstream: Upstream, where: str) -> _Deployment:
        """The deployment's own settings: weight (or rpm/tpm), order, price; other params are reported."""
        dep = _Deployment(where, upstream)
        for key in ("weight", "rpm", "tpm"):
            if params.get(key) is not None:
                setattr(dep, key, self.number(params[key], f"{where}.{key}", positive=key == "weight"))
        if params.get("order") is not None:
            order = params["order"]
            if isinstance(order, bool) or not isinstance(order, int):
                self.problem(f"{where}.order", f"must be an integer, not {_kind(order)}")
            else:
                dep.order = order
        if dep.rpm is not None or dep.tpm is not None:
            self.found("unmapped", f"{where}.{'rpm' if dep.rpm is not None else 'tpm'}",
                       "a deployment's own rate limit is not enforced (ParrotRouter limits keys: `keys create "
                       "--rpm/--tpm`); it sets the deployment's weight, as LiteLLM's simple-shuffle does")
        dep.pricing = self.pricing(params, where)
        for key in params:
            if key not in _DEPLOYMENT_PARAMS and key not in upstream.consumed:
                self.found("unmapped", f"{where}.{key}", _unmapped_param(key))
        return dep

    def pricing(self, values: Mapping[str, Any], where: str) -> dict[str, Any] | None:
        """LiteLLM's USD per token as our price per million tokens."""
        costs = {}
        for key, ours in (("input_cost_per_token", "prompt"), ("output_cost_per_token", "completion"),
                          ("cache_read_input_token_cost", "cached_prompt")):
            if values.get(key) is not None:
                number = self.number(values[key], f"{where}.{key}", maximum=MAX_PRICE_PER_TOKEN)
                if number is not None:
                    costs[ours] = _per_million(values[key])
        if not costs:
            return None
        costs.setdefault("prompt", 0)
        costs.setdefault("completion", 0)
        return {"prompt": costs["prompt"], "completion": costs["completion"],
                **({"cached_prompt": costs["cached_prompt"]} if "cached_prompt" in costs else {}),
                "unit": "1m_tokens"}

    def model_fields(self, model: _Model, params: Mapping[str, Any], info: Mapping[str, Any], upstream: Upstream,
                     where: str) -> None:
        """context_length, max_output_tokens, capabilities and pricing from model_info (the first
        deployment that states one wins; a different value later is reported)."""
        found: dict[str, Any] = {}
        iwhere = f"{where}.model_info"
        for key in info:
            if key not in _MODEL_INFO:
                self.found("unmapped", f"{iwhere}.{key}", "model_info field without equivalent")
        if info.get("id") is not None:
            self.found("note", f"{iwhere}.id", "deployment ids are not kept: a deployment is named "
                       "provider/model (e.g. in X-ParrotRouter-Attempts)")
        for key, ours in (("max_input_tokens", "context_length"), ("max_output_tokens", "max_output_tokens")):
            if info.get(key) is not None:
                found[ours] = self.count(info[key], f"{iwhere}.{key}")
        if info.get("max_tokens") is not None:  # LiteLLM's older name: the output cap (an embedding model's input)
            ours = "context_length" if info.get("mode") == "embedding" else "max_output_tokens"
            if ours not in found:
                found[ours] = self.count(info["max_tokens"], f"{iwhere}.max_tokens")
        if params.get("max_tokens") is not None and "max_output_tokens" not in found:
            found["max_output_tokens"] = self.count(params["max_tokens"], f"{where}.litellm_params.max_tokens")
            self.found("note", f"{where}.litellm_params.max_tokens", "became the model's max_output_tokens: the "
                       "default output cap sent to Anthropic, Gemini, Bedrock and Cohere; a request's own "
                       "max_tokens still wins")
        # supports_* may be written in litellm_params too (LiteLLM reads both); model_info wins.
        caps = self.capabilities({**{k: v for k, v in params.items() if k in _SUPPORTS}, **info}, upstream, iwhere)
        if caps is not None:
            found["capabilities"] = caps
        info_pricing = self.pricing(info, iwhere)
        if info_pricing is not None and model.deployments[-1].pricing is None:
            model.deployments[-1].pricing = info_pricing
        if info.get("base_model") is not None:
            self.base_model_pricing(model.deployments[-1], info["base_model"], f"{iwhere}.base_model")
        for key, value in found.items():
            if value is None:
                continue
            if key in model.fields and model.fields[key] != value:
                self.found("note", where, f"{key} {value} differs from an earlier deployment's; the first is kept")
            model.fields.setdefault(key, value)

    def base_model_pricing(self, dep: _Deployment, base_model: Any, where: str) -> None:
        """LiteLLM prices a deployment whose name says nothing (an Azure deployment) as its
        `base_model`: ours is written in the file, from the price table."""
        if not isinstance(base_model, str):
            self.problem(where, f"must be a string, not {_kind(base_model)}")
            return
        if dep.pricing is not None:
            self.found("note", where, "not used: the deployment's own price is given")
            return
        model = base_model.split("/", 1)[1] if base_model.split("/", 1)[0] in KINDS else base_model
        kind = dep.upstream.kind
        preset = all_presets().get(kind.name) if kind else None
        found = next((p for p in (lookup_pricing(model, ids) for ids in dict.fromkeys(
            ((preset.prices_id if preset else None), "openai")) if ids) if p is not None), None)
        if found is None:
            self.found("unmapped", where, f"'{base_model[:80]}' is not in the price table: price the model in "
                       "the file (pricing:)")
            return
        dep.pricing = {"prompt": _tidy_decimal(found.prompt_mtok), "completion": _tidy_decimal(found.completion_mtok),
                       **({"cached_prompt": _tidy_decimal(found.cached_prompt_mtok)}
                          if found.cached_prompt_mtok is not None else {}), "unit": "1m_tokens"}
        self.found("note", where, f"priced as {model} from the price table, written into the file (today's base "
                   "rate; update it when the price changes)")

    def count(self, value: Any, where: str) -> int | None:
        """A positive integer (a token count); None (and a problem) otherwise."""
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            self.problem(where, f"must be a positive integer, not {_kind(value)}")
            return None
        return value

    def capabilities(self, info: Mapping[str, Any], upstream: Upstream, where: str) -> dict[str, bool] | None:
        """Our capabilities from model_info's mode and supports_* flags (None: the defaults)."""
        mode = info.get("mode")
        base: dict[str, bool] | None = dict(upstream.capabilities) if upstream.capabilities else None
        if mode is not None:
            if not isinstance(mode, str):
                self.problem(f"{where}.mode", f"must be a string, not {_kind(mode)}")
                return None
            if _MODES.get(mode) is not None:
                base = dict(_MODES[mode] or {})
        supports = {ours: info[key] for key, ours in _SUPPORTS.items() if key in info}
        for key, value in supports.items():
            if not isinstance(value, bool):
                self.problem(f"{where}.{key}", f"must be true or false, not {_kind(value)}")
                return None
        if not supports:
            return base
        preset = all_presets().get(upstream.kind.name) if upstream.kind else None
        vision = bool(preset and upstream.model.startswith(preset.vision_prefixes))
        return {"vision": vision, **(base or {}), **supports}

    def provider_for(self, upstream: Upstream, where: str) -> str:
        """The provider serving this upstream: one per distinct (type, base URL, key, options)."""
        identity = upstream.identity()
        name = self._provider_by_identity.get(identity)
        if name is not None:
            self.merge_timeouts(name, upstream, where)
            return name
        base = upstream.provider_name()
        name, n = base, 1
        while name in self.providers:
            n += 1
            name = f"{base}-{n}"
        self._provider_by_identity[identity] = name
        spec: dict[str, Any] = {"name": name, "type": upstream.type}
        base_url = upstream.base_url
        preset = all_presets().get(upstream.provider_name())
        if base_url is None and name != upstream.provider_name() and preset is not None and preset.base_url:
            base_url = preset.base_url  # a second provider of a preset: it inherits nothing by name
        if base_url is not None:
            spec["base_url"] = base_url
        key = upstream.api_key
        if key is not None:
            if key.literal_digest is not None:
                spec["api_key"] = {"$env": ""}  # named once every reference is known: `name_inline_keys`
                self._inline_keys[name] = key.where
            else:
                spec["api_key"] = {"$env": key.env}
        if upstream.headers:
            spec["headers"] = dict(upstream.headers)
        if upstream.region:
            spec["region"] = upstream.region
        if upstream.options:
            spec["options"] = dict(upstream.options)
        if upstream.timeouts:
            spec["timeouts"] = dict(upstream.timeouts)
        self.providers[name] = spec
        for level, message in upstream.provider_findings:
            self.found(level, where, message.replace("{provider}", name))
        return name

    def merge_timeouts(self, name: str, upstream: Upstream, where: str) -> None:
        """Deployments sharing a provider may give different timeouts: the longest is kept."""
        spec = self.providers[name]
        if not upstream.timeouts or spec.get("timeouts") == upstream.timeouts:
            return
        merged = dict(spec.get("timeouts", {}))
        for key, value in upstream.timeouts.items():
            merged[key] = max(merged.get(key, value), value)
        spec["timeouts"] = merged
        self.found("note", where, f"timeouts differ between deployments of provider '{name}' (ParrotRouter's "
                   "are per provider): the longest is kept")

    # -- output

    def name_inline_keys(self) -> None:
        """A variable for each key written in the file — `<PROVIDER>_API_KEY`, unless another
        provider already reads that variable (then a numbered one)."""
        taken = {spec["api_key"]["$env"] for name, spec in self.providers.items()
                 if "api_key" in spec and name not in self._inline_keys}
        for name, where in self._inline_keys.items():
            base = variable = env_name(name) + "_API_KEY"
            n = 1
            while variable in taken:
                n += 1
                variable = f"{base}_{n}"
            taken.add(variable)
            self.providers[name]["api_key"] = {"$env": variable}
            self.found("action", where, f"the key was written in the file and is not copied: set {variable} to "
                       f"it (provider '{name}' reads it from there)")

    def assemble(self) -> dict[str, Any]:
        """Our configuration file's contents, once everything is read."""
        self.name_inline_keys()
        models = []
        taken = set(self.models)
        for model in self.models.values():
            models.append(self.model_config(model, taken))
        out: dict[str, Any] = {}
        if self.server:
            out["server"] = self.server
        out["providers"] = list(self.providers.values())
        out["models"] = models
        # LiteLLM serves exactly its model_list unless a wildcard asks for more.
        out["env_providers"] = self.env_providers
        return out

    def model_config(self, model: _Model, taken: set[str]) -> dict[str, Any]:
        """One model's entry: its deployments (weighted or ordered), aliases, limits, price, strategy."""
        deps = _merge_duplicates(model, self)
        strategy = self.server_strategy
        if any(d.order is not None for d in deps):
            deps.sort(key=lambda d: d.order if d.order is not None else math.inf)
            strategy = "priority"
            self.found("note", model.where, f"'{model.name}': deployments with `order` are tried in that order "
                       "(strategy: priority)")
        weights = _weights(deps) if strategy in (None, "weighted") else [d.weight for d in deps]
        out: dict[str, Any] = {"id": model.name}
        aliases = [a for a in model.aliases if a not in taken]
        taken.update(aliases)
        if aliases:
            out["aliases"] = aliases
        out["deployments"] = []
        prices = [d.pricing for d in deps]
        shared = prices[0] if prices[0] is not None and all(p == prices[0] for p in prices) else None
        for dep, weight in zip(deps, weights, strict=True):
            item: dict[str, Any] = {"provider": dep.provider, "model": dep.upstream.model}
            if weight is not None and weight != 1:
                item["weight"] = weight
            if dep.pricing is not None and shared is None:
                item["pricing"] = dep.pricing
            out["deployments"].append(item)
        for key in ("context_length", "max_output_tokens", "capabilities"):
            if model.fields.get(key) is not None:
                out[key] = model.fields[key]
        if shared is not None:
            out["pricing"] = shared
        if strategy not in (None, "weighted") and len(deps) > 1:
            out["strategy"] = strategy
        return out


def _merge_duplicates(model: _Model, conv: Converter) -> list[_Deployment]:
    """One deployment per (provider, upstream model): LiteLLM may list the same one twice."""
    out: dict[tuple[str, str], _Deployment] = {}
    for dep in model.deployments:
        key = (dep.provider, dep.upstream.model)
        if key in out:
            conv.found("note", dep.where, f"the same upstream as an earlier deployment of '{model.name}' "
                       f"({dep.provider}/{dep.upstream.model}): merged into one deployment")
            continue
        out[key] = dep
    return list(out.values())


def _weights(deps: list[_Deployment]) -> list[float | None]:
    """LiteLLM's simple-shuffle weights: `weight` when the first deployment has one, else `rpm`,
    else `tpm` (a deployment without it counts 0 there; here it gets the smallest weight given)."""
    for key in ("weight", "rpm", "tpm"):
        if getattr(deps[0], key) is not None:
            values = [getattr(d, key) for d in deps]
            given = [v for v in values if v]
            if not given:
                return [None] * len(deps)
            if len(deps) == 1 or len(set(values)) == 1:
                return [None] * len(deps)
            return [_tidy(v) if v else _tidy(min(given)) for v in values]
    return [None] * len(deps)


def _tidy(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _per_million(value: float | int) -> float | int:
    return _tidy_decimal(Decimal(str(value)) * 1_000_000)


def _tidy_decimal(value: Decimal) -> float | int:
    """A price as YAML writes it plainly: an integer when it is one."""
    return int(value) if value == value.to_integral_value() else float(value.normalize())


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return {bool: "a boolean", int: "an integer", float: "a number", list: "a list", dict: "a mapping"}.get(
        type(value), type(value).__name__)


def _unmapped_param(key: str) -> str:
    if key in ("temperature", "top_p", "seed", "stop", "frequency_penalty", "presence_penalty"):
        return "a default request parameter: ParrotRouter sends what the request says"
    if key in ("max_retries", "num_retries"):
        return "per-deployment retries: ParrotRouter's attempts are bounded by the max_attempts setting"
    if key in ("extra_headers", "headers"):
        return "headers are not copied (they may hold secrets): add them to the provider's `headers` by hand"
    return "no equivalent"


