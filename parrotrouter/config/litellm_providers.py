"""Which of our providers a LiteLLM deployment's `litellm_params` stand for (`config import-litellm`).

LiteLLM names the upstream by a prefix of `model` (`azure/…`, `bedrock/…`, `groq/…`); the key,
base URL and provider options come from the other params. Each is read into an `Upstream`, whose
identity (type, base URL, key, options) decides which deployments share one provider.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Mapping
from typing import Any, Literal, Protocol

from ..providers.bedrock import REGION
from ..providers.presets import all_presets

ENV_PREFIX = "os.environ/"
MAX_SECONDS = 86_400  # a timeout or cooldown longer than a day is a mistake
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_AZURE_VERSION = re.compile(r"[A-Za-z0-9._-]{1,40}")
_STANDARD_AWS = {"aws_access_key_id": "AWS_ACCESS_KEY_ID", "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY",
                 "aws_session_token": "AWS_SESSION_TOKEN"}
_COMPLETION = {"chat": False, "completion": True, "function_calling": False, "json_mode": False}

Level = Literal["action", "unmapped", "note"]


class Reporter(Protocol):
    def found(self, level: Level, where: str, message: str) -> None: ...

    def problem(self, where: str, message: str) -> None: ...

    def number(self, value: Any, where: str, *, positive: bool = False,
               maximum: float | None = None) -> float | None: ...

    def name(self, value: Any, where: str) -> str | None: ...


@dataclasses.dataclass(frozen=True)
class Kind:
    """A LiteLLM provider prefix, as one of our provider types."""

    type: str
    name: str  # our provider's name: the preset's where one matches
    base_url: str | None = None  # where it is when api_base is not given (None: the preset's)
    base_required: bool = False  # LiteLLM needs api_base for it
    base_env: str | None = None  # where LiteLLM reads api_base when it is not given
    key_env: str | None = None  # where LiteLLM reads its key when api_key is not given (else the preset's)
    completion: bool = False  # a text-completion model
    v1: bool = False  # api_base is the server's root; the OpenAI-compatible API is under /v1


_OPENAI = Kind("openai", "openai")
_AZURE = Kind("azure", "azure", key_env="AZURE_API_KEY", base_env="AZURE_API_BASE")
_COMPATIBLE = Kind("openai", "openai-compatible", base_required=True)
KINDS: dict[str, Kind] = {
    "openai": _OPENAI,
    "text-completion-openai": dataclasses.replace(_OPENAI, completion=True),
    "azure": _AZURE,
    "azure_text": dataclasses.replace(_AZURE, completion=True),
    "anthropic": Kind("anthropic", "anthropic"),
    "gemini": Kind("gemini", "gemini"),
    "bedrock": Kind("bedrock", "bedrock"),
    "cohere": Kind("cohere", "cohere"),
    "cohere_chat": Kind("cohere", "cohere"),
    "mistral": Kind("openai", "mistral"),
    "groq": Kind("openai", "groq"),
    "deepseek": Kind("openai", "deepseek"),
    "together_ai": Kind("openai", "together"),
    "fireworks_ai": Kind("openai", "fireworks"),
    "xai": Kind("openai", "xai"),
    "openrouter": Kind("openai", "openrouter"),
    "cerebras": Kind("openai", "cerebras"),
    "perplexity": Kind("openai", "perplexity"),
    "ollama": Kind("openai", "ollama", base_url="http://localhost:11434/v1", v1=True),
    "ollama_chat": Kind("openai", "ollama", base_url="http://localhost:11434/v1", v1=True),
    "hosted_vllm": Kind("openai", "vllm", base_env="HOSTED_VLLM_API_BASE"),
    "lm_studio": Kind("openai", "lmstudio", base_url="http://localhost:1234/v1"),
    "llamafile": Kind("openai", "llamafile", base_url="http://127.0.0.1:8080/v1"),
    "nvidia_nim": Kind("openai", "nvidia-nim", base_url="https://integrate.api.nvidia.com/v1",
                       key_env="NVIDIA_NIM_API_KEY"),
    "deepinfra": Kind("openai", "deepinfra", base_url="https://api.deepinfra.com/v1/openai",
                      key_env="DEEPINFRA_API_KEY"),
    "xinference": Kind("openai", "xinference", base_required=True),
    "custom_openai": _COMPATIBLE,
    "litellm_proxy": Kind("openai", "litellm-proxy", base_required=True, key_env="LITELLM_PROXY_API_KEY"),
}
_HINTS = {"vertex_ai": "for Gemini models use the gemini/ prefix with a Gemini API key",
          "gemini-": "LiteLLM sends a gemini- model without a prefix to Vertex AI; use the gemini/ prefix with a "
                     "Gemini API key",
          "vertex_ai_beta": "for Gemini models use the gemini/ prefix with a Gemini API key",
          "vllm": "LiteLLM's in-process vLLM; serve it with `vllm serve` and use hosted_vllm/"}
# Bare model names LiteLLM knows the provider of (the few a config commonly uses).
_BARE = ((re.compile(r"^(gpt-|o\d|chatgpt-|text-embedding-|davinci|babbage|ft:gpt)"), "openai"),
         (re.compile(r"^claude-"), "anthropic"), (re.compile(r"^command"), "cohere"))


@dataclasses.dataclass(frozen=True)
class KeyRef:
    where: str
    env: str | None = None  # {$env: NAME}
    literal_digest: str | None = None  # written in the file: a digest, to tell keys apart; never the value


@dataclasses.dataclass
class Upstream:
    """One deployment's upstream, read from its litellm_params."""

    kind: Kind | None  # None: a bare `*` wildcard (every provider of the environment)
    model: str = ""
    base_url: str | None = None
    api_key: KeyRef | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    region: str | None = None
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    timeouts: dict[str, float] = dataclasses.field(default_factory=dict)
    wildcard: bool = False
    consumed: set[str] = dataclasses.field(default_factory=set)  # the params read here
    provider_findings: list[tuple[Level, str]] = dataclasses.field(default_factory=list)

    @property
    def type(self) -> str:
        return self.kind.type if self.kind else "openai"

    @property
    def capabilities(self) -> dict[str, bool] | None:
        return dict(_COMPLETION) if self.kind and self.kind.completion else None

    def identity(self) -> tuple[Any, ...]:
        key = (self.api_key.env, self.api_key.literal_digest) if self.api_key else None
        return (self.kind.name if self.kind else None, self.type, self.base_url, key,
                tuple(sorted(self.headers.items())), self.region, tuple(sorted(self.options.items())))

    def provider_name(self) -> str:
        return self.kind.name if self.kind else "openai"


def is_env_ref(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(ENV_PREFIX)


def env_name(provider: str) -> str:
    """An environment variable name made from a provider name."""
    return re.sub(r"[^A-Z0-9]", "_", provider.upper())


def _header_safe(value: str) -> bool:
    """Visible ASCII only (no space, no line break): safe in a URL or a header sent upstream."""
    return 0 < len(value) <= 2048 and all("!" <= c <= "~" for c in value)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def _env_ref(conv: Reporter, value: str, where: str) -> str | None:
    name = value[len(ENV_PREFIX):]
    if not _ENV_NAME.fullmatch(name):
        conv.problem(where, f"'{value[:80]}' names no valid environment variable")
        return None
    return name


def upstream_of(conv: Reporter, params: Mapping[str, Any], where: str) -> Upstream | None:
    """The upstream of one deployment, or None (reported) when ParrotRouter cannot serve it."""
    model = conv.name(params.get("model"), f"{where}.model")
    if model is None:
        return None
    if model == "*":
        return Upstream(None, "*", wildcard=True, consumed={"model"})
    found = _kind_of(conv, model, params, where)
    if found is None:
        return None
    kind, upstream_model = found
    up = Upstream(kind, upstream_model, wildcard=upstream_model == "*", consumed={"model", "custom_llm_provider"})
    _base_url(conv, up, params.get("api_base"), where)
    _api_key(conv, up, params, where)
    _timeouts(conv, up, params, where)
    if kind.type == "azure":
        _azure(conv, up, params, where)
    if kind.type == "bedrock":
        _bedrock(conv, up, params, where)
    if kind.type == "openai" and params.get("organization") is not None:
        up.consumed.add("organization")
        org = params["organization"]
        if isinstance(org, str) and not is_env_ref(org) and _header_safe(org):
            up.headers["OpenAI-Organization"] = org
        else:
            conv.found("unmapped", f"{where}.organization", "only a literal organization id is mapped (to the "
                       "OpenAI-Organization header); add it to the provider's `headers` by hand")
    if params.get("region_name") is not None:
        up.consumed.add("region_name")
        region = conv.name(params["region_name"], f"{where}.region_name")
        up.region = region
    return up


def _kind_of(conv: Reporter, model: str, params: Mapping[str, Any], where: str) -> tuple[Kind, str] | None:
    custom = params.get("custom_llm_provider")
    prefix, _, rest = model.partition("/")
    if custom is not None:
        if not isinstance(custom, str):
            conv.problem(f"{where}.custom_llm_provider", "must be a string")
            return None
        prefix, rest = custom, model.removeprefix(custom + "/")
    elif not rest:
        prefix, rest = "", model
    if prefix in KINDS and rest:
        kind = KINDS[prefix]
        if kind.type == "openai" and kind.name == "openai" and params.get("api_base") is not None \
                and not _is_preset_base(params.get("api_base"), "openai"):
            kind = dataclasses.replace(_COMPATIBLE, completion=kind.completion)
        if kind.type == "bedrock":
            for route in ("converse/", "invoke/"):
                rest = rest.removeprefix(route)
        return kind, rest
    if prefix:
        hint = _HINTS.get(prefix, "ParrotRouter serves OpenAI-compatible, Azure, Anthropic, Gemini, Bedrock and "
                          "Cohere upstreams")
        conv.found("unmapped", f"{where}.model", f"provider '{prefix}' is not supported ({hint}): this deployment "
                   "is left out")
        return None
    for pattern, name in _BARE:
        if pattern.match(rest):
            return KINDS[name], rest
    if params.get("api_base") is not None:
        conv.found("note", f"{where}.model", f"'{rest}' has no provider prefix: taken as OpenAI-compatible at api_base")
        return _COMPATIBLE, rest
    why = _HINTS["gemini-"] if rest.startswith("gemini") else "no provider prefix such as openai/"
    conv.found("unmapped", f"{where}.model", f"cannot tell which provider serves '{rest[:80]}' ({why}): this "
               "deployment is left out")
    return None


def _is_preset_base(value: Any, preset_name: str) -> bool:
    preset = all_presets().get(preset_name)
    return (isinstance(value, str) and preset is not None and bool(preset.base_url)
            and value.rstrip("/") == preset.base_url.rstrip("/"))


def _base_url(conv: Reporter, up: Upstream, value: Any, where: str) -> None:
    kind = up.kind
    assert kind is not None
    up.consumed.add("api_base")
    if value is None and kind.base_env is not None:
        value = ENV_PREFIX + kind.base_env  # LiteLLM's default, as if written
    if value is None:
        up.base_url = kind.base_url
        if kind.base_required:
            up.base_url = "https://replace-me.invalid"
            up.provider_findings.append(("action", f"no api_base: set the base_url of provider '{{provider}}' "
                                         f"(written as {up.base_url})"))
        return
    if is_env_ref(value):
        var = _env_ref(conv, value, f"{where}.api_base")
        if var is None:
            return
        up.base_url = f"https://{var.lower().replace('_', '-')}.invalid"
        up.provider_findings.append(("action", f"api_base came from ${var}; ParrotRouter's base_url is written in "
                                     f"the file: replace {up.base_url} in provider '{{provider}}' by its value"))
        return
    if not isinstance(value, str):
        conv.problem(f"{where}.api_base", "must be a string")
        return
    if not value.startswith(("http://", "https://")) or not _header_safe(value) or len(value) > 2048:
        up.base_url = "https://replace-me.invalid"
        up.provider_findings.append(("action", f"api_base '{value[:80]}' is not a URL: set the base_url of "
                                     f"provider '{{provider}}' (written as {up.base_url})"))
        return
    url: str | None = value.rstrip("/")
    assert url is not None
    if kind.v1 and not url.endswith("/v1"):
        url += "/v1"
        up.provider_findings.append(("note", f"provider '{{provider}}' reaches {kind.name}'s OpenAI-compatible API "
                                     f"under /v1 ({url})"))
    preset = all_presets().get(kind.name)
    if preset is not None and preset.type == kind.type and preset.base_url and \
            url == preset.base_url.rstrip("/"):
        url = None  # the preset's own: inherited
    up.base_url = url


def _api_key(conv: Reporter, up: Upstream, params: Mapping[str, Any], where: str) -> None:
    kind = up.kind
    assert kind is not None
    up.consumed.update(("api_key", "azure_ad_token"))
    key_where, value = f"{where}.api_key", params.get("api_key")
    if kind.type == "azure" and value is None and params.get("azure_ad_token") is not None:
        key_where, value = f"{where}.azure_ad_token", params["azure_ad_token"]
        up.options["auth"] = "entra_id"
        up.provider_findings.append(("note", "provider '{provider}' sends the Entra ID token as given; it is never "
                                     "refreshed"))
    if value is None:
        preset = all_presets().get(kind.name)
        # a local server's preset (vLLM, Ollama, ...) needs no key: none is referenced for it
        default = kind.key_env or (preset.key_envs[0] if preset and preset.type == kind.type and preset.key_envs
                                   and not preset.local else None)
        up.api_key = KeyRef(key_where, env=default) if default else None
        return
    shell = re.fullmatch(r"\$\{([A-Za-z_][A-Za-z0-9_]{0,127})\}", value) if isinstance(value, str) else None
    if is_env_ref(value):
        var = _env_ref(conv, value, key_where)
        up.api_key = KeyRef(key_where, env=var) if var else None
    elif shell is not None:  # a shell-style placeholder, as configs templated by envsubst or compose hold
        up.api_key = KeyRef(key_where, env=shell.group(1))
        conv.found("note", key_where, f"'{value}' is taken as a reference to the environment variable "
                   f"{shell.group(1)} (LiteLLM itself reads os.environ/NAME)")
    elif value == "":
        up.api_key = None
    elif isinstance(value, str):
        up.api_key = KeyRef(key_where, literal_digest=_digest(value))
    else:
        conv.problem(key_where, "must be a string")


def _timeouts(conv: Reporter, up: Upstream, params: Mapping[str, Any], where: str) -> None:
    for key, ours in (("timeout", "total"), ("stream_timeout", "first_token")):
        if params.get(key) is None:
            continue
        up.consumed.add(key)
        if is_env_ref(params[key]):
            conv.found("unmapped", f"{where}.{key}", "a number read from the environment: write it into the "
                       f"provider's timeouts.{ours}")
            continue
        seconds = conv.number(params[key], f"{where}.{key}", positive=True, maximum=MAX_SECONDS)
        if seconds is not None:
            up.timeouts[ours] = seconds
            if key == "stream_timeout":
                conv.found("note", f"{where}.{key}", "became timeouts.first_token: how long a stream may take "
                           "to start (idle and total bound the rest)")


def _azure(conv: Reporter, up: Upstream, params: Mapping[str, Any], where: str) -> None:
    up.consumed.add("api_version")
    version = params.get("api_version")
    if version is None:
        return
    if isinstance(version, str) and _AZURE_VERSION.fullmatch(version):
        up.options["api_version"] = version
    elif is_env_ref(version):
        up.provider_findings.append(("action", f"api_version came from ${version[len(ENV_PREFIX):]}: write it as "
                                     "options.api_version of provider '{provider}' (else 2024-10-21 is used)"))
    else:
        conv.found("unmapped", f"{where}.api_version", f"not an API version: {str(version)[:60]!r} (the default "
                   "2024-10-21 is used)")


def _bedrock(conv: Reporter, up: Upstream, params: Mapping[str, Any], where: str) -> None:
    region = params.get("aws_region_name")
    if region is not None:
        up.consumed.add("aws_region_name")
        if isinstance(region, str) and re.fullmatch(REGION, region):
            up.options["region"] = region
        elif is_env_ref(region):
            conv.found("action", f"{where}.aws_region_name", "the region came from the environment: ParrotRouter "
                       "reads AWS_REGION or AWS_DEFAULT_REGION (or write it as options.region)")
        else:
            conv.problem(f"{where}.aws_region_name", f"not an AWS region: {str(region)[:40]!r}")
    profile = params.get("aws_profile_name")
    if profile is not None:
        up.consumed.add("aws_profile_name")
        if isinstance(profile, str) and not is_env_ref(profile) and 0 < len(profile) <= 128:
            up.options["profile"] = profile
        else:
            conv.found("unmapped", f"{where}.aws_profile_name", "only a literal profile name is mapped")
    endpoint = params.get("aws_bedrock_runtime_endpoint")
    if endpoint is not None:
        up.consumed.add("aws_bedrock_runtime_endpoint")
        if isinstance(endpoint, str) and endpoint.startswith(("http://", "https://")):
            up.base_url = endpoint.rstrip("/")
        else:
            conv.found("unmapped", f"{where}.aws_bedrock_runtime_endpoint", "only a literal URL is mapped")
    for key, standard in _STANDARD_AWS.items():
        value = params.get(key)
        if value is None:
            continue
        up.consumed.add(key)
        if value == ENV_PREFIX + standard:
            conv.found("note", f"{where}.{key}", f"read from {standard} by the standard AWS credential chain")
        elif is_env_ref(value):
            conv.found("action", f"{where}.{key}", f"ParrotRouter uses the standard AWS credential chain: set "
                       f"{standard} to the value of ${value[len(ENV_PREFIX):]}")
        else:
            conv.found("action", f"{where}.{key}", f"written in the file and not copied: set {standard} (the "
                       "standard AWS credential chain) instead")
