"""Azure OpenAI (`type: azure`): the OpenAI-compatible adapter, addressed and authenticated the
Azure way, with Azure's content filter mapped to our codes.

Addressing: `{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=…` (and
`/completions`, `/embeddings`), or with `options.surface: v1` the v1 API, `{endpoint}/openai/v1/chat/completions`
(no api-version; the deployment is the body's `model`). The body is the client's, as for any
OpenAI-compatible upstream, with `model` set to the deployment (as the openai SDK sends it).
Credentials: the `api-key` header, or with `options.auth: entra_id` a Microsoft Entra ID token
sent as `Authorization: Bearer` (a static token: it is not refreshed).
Zero config: AZURE_OPENAI_ENDPOINT with AZURE_OPENAI_AD_TOKEN (preferred) or AZURE_OPENAI_API_KEY,
and OPENAI_API_VERSION, as the openai SDK's `AzureOpenAI` client reads them; Azure deployment
names are the user's own, so AZURE_OPENAI_DEPLOYMENTS lists the ones to serve (`name` or
`name=model`, the model naming the price and capabilities).
Content filtering: a prompt Azure's filter refuses (400, code `content_filter`) is our
`content_filter` failure, a 400 the client sees and that is never retried or failed over; an
answer the filter cut keeps `finish_reason: "content_filter"`; the filter's annotations
(`prompt_filter_results`, `content_filter_results`, annotation-only stream chunks) are dropped, so
answers have OpenAI's shape whatever served them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..catalog import Capabilities, Deployment, ModelSpec, ProviderSpec
from ..errors import ConfigError, FailureKind, InvalidRequest
from ..pricing import lookup_pricing
from ..settings import Secret
from ..upstream.client import ServerSentEvent, UpstreamRequest
from .base import ChatCall, CompletionCall, EmbeddingCall
from .embedding_models import EMBEDDING, embedding_pricing, is_embedding_model
from .openai_compat import ErrorCodes, OpenAIAdapter, OpenAIStream
from .openai_responses import build_http_provider
from .presets import Preset
from .registry import ProviderType

NAME = "azure"
DEFAULT_API_VERSION = "2024-10-21"  # the latest GA api-version of the deployments API
ENDPOINT_ENV, API_KEY_ENV, AD_TOKEN_ENV = "AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_AD_TOKEN"
VERSION_ENV, DEPLOYMENTS_ENV = "OPENAI_API_VERSION", "AZURE_OPENAI_DEPLOYMENTS"
MAX_ENV_DEPLOYMENTS = 256
# Azure deployment names: letters, digits, '.', '_' and '-', at most 64 characters.
DEPLOYMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
VISION_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4-turbo", "gpt-5", "o1", "o3", "o4")
# The content filter's annotations: on a chunk or answer, and on each choice.
FILTER_FIELDS = ("prompt_filter_results", "prompt_annotations")
CHOICE_FILTER_FIELDS = ("content_filter_results", "content_filter_offsets", "content_filter_raw")
DATA_SOURCE_FIELDS = ("data_sources", "dataSources")  # On Your Data (and its 2023 preview spelling)


class AzureOptions(BaseModel):
    """`options:` of an azure provider in the config file."""

    model_config = ConfigDict(extra="forbid")

    surface: Literal["deployments", "v1"] = "deployments"
    # deployments: default DEFAULT_API_VERSION; v1: none unless given (e.g. `preview`).
    api_version: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,40}$")] | None = None
    auth: Literal["api_key", "entra_id"] = "api_key"  # how `api_key` is sent: api-key, or Bearer
    allow_data_sources: bool = False  # let callers send `data_sources` (On Your Data) through


def without_filter_results(obj: dict[str, Any]) -> dict[str, Any]:
    """An answer or chunk without the content filter's annotations."""
    for field in FILTER_FIELDS:
        obj.pop(field, None)
    choices = obj.get("choices")
    for choice in choices if isinstance(choices, list) else ():
        if isinstance(choice, dict):
            for field in CHOICE_FILTER_FIELDS:
                choice.pop(field, None)
    return obj


class AzureStream(OpenAIStream):
    """OpenAI's SSE, less Azure's annotation-only chunks: the first one (`choices: []`, the prompt's
    filter results) and those that only annotate text already sent (no delta or text, no finish). The
    chunk that ends a filtered answer has a finish but no delta; the normaliser gives it one."""

    __slots__ = ()

    def feed(self, event: ServerSentEvent) -> list[dict[str, Any]]:
        out = []
        for chunk in super().feed(event):
            without_filter_results(chunk)
            choices = chunk.get("choices")
            if isinstance(choices, list):
                choices[:] = [c for c in choices if not isinstance(c, dict) or "delta" in c or "text" in c
                              or c.get("finish_reason") is not None]
                if not choices and not chunk.get("usage"):
                    continue
            out.append(chunk)
        return out


STREAM_USAGE_SINCE = "2024-09-01"  # the first api-version that takes stream_options
RESPONSES_SINCE = "2025-03-01-preview"  # the first api-version with the Responses API


class AzureAdapter(OpenAIAdapter):
    error_codes: ErrorCodes = {"content_filter": FailureKind.CONTENT_FILTER}

    def __init__(self, spec: ProviderSpec) -> None:
        super().__init__(spec)
        assert spec.base_url is not None
        self.options = AzureOptions.model_validate(dict(spec.options))
        self._root = endpoint_of(spec.base_url) + "/openai"
        version = self.options.api_version
        if self.options.surface == "deployments":
            version = version or DEFAULT_API_VERSION
        self._query = f"?api-version={quote(version, safe='')}" if version else ""
        # Versions before 2024-09-01-preview refuse `stream_options` ("Unrecognized request argument
        # supplied"): their streams carry no usage, and the gateway counts the tokens itself.
        if version is not None and version[:10] < STREAM_USAGE_SINCE:
            self.stream_usage = False
            self._drop = self._drop | {"stream_options"}
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if spec.api_key:
            if self.options.auth == "entra_id":
                headers["Authorization"] = f"Bearer {spec.api_key.reveal()}"
            else:
                headers["api-key"] = spec.api_key.reveal()
        headers.update(spec.headers)
        self._headers = headers

    def url(self, deployment: str, operation: str) -> str:
        """The URL of an operation (`/chat/completions`, `/completions`) on a deployment."""
        if self.options.surface == "v1":
            return f"{self._root}/v1{operation}{self._query}"
        return f"{self._root}/deployments/{quote(deployment, safe='')}{operation}{self._query}"

    def delete_model_request(self, upstream_model: str) -> UpstreamRequest | None:
        return None  # Azure deletes fine-tuned models through its management API, not this one

    def responses_url(self, model: str) -> str | None:
        """The v1 API's `/responses`, or the resource's with a preview api-version that has it."""
        if self.options.surface == "v1":
            return f"{self._root}/v1/responses{self._query}"
        version = self.options.api_version
        if version is not None and version >= RESPONSES_SINCE:
            return f"{self._root}/responses{self._query}"
        return None

    def chat_request(self, call: ChatCall) -> UpstreamRequest:
        extension = next((f for f in DATA_SOURCE_FIELDS if f in call.raw), None)
        if extension is not None and not self.options.allow_data_sources:
            # On Your Data makes Azure query the search indexes a body names with the resource's
            # own identity: not for any caller of the gateway to choose.
            raise InvalidRequest(f"'{extension}' is not accepted by the provider '{self.spec.name}'.",
                                 param=extension)
        model = self.upstream_model(call)
        return UpstreamRequest(self.url(model, "/chat/completions"), self._body(call.raw, model, call.stream),
                               self._headers, call.stream)

    def completion_request(self, call: CompletionCall) -> UpstreamRequest:
        model = self.upstream_model(call)
        return UpstreamRequest(self.url(model, "/completions"), self._body(call.raw, model, call.stream),
                               self._headers, call.stream)

    def embeddings_url(self, call: EmbeddingCall) -> str:
        return self.url(call.deployment.upstream_model, "/embeddings")

    def chat_response(self, body: bytes, call: ChatCall) -> dict[str, Any]:
        return without_filter_results(super().chat_response(body, call))

    def completion_response(self, body: bytes, call: CompletionCall) -> dict[str, Any]:
        return without_filter_results(super().completion_response(body, call))

    def chat_stream(self, call: ChatCall) -> AzureStream:
        return AzureStream(self.spec.name, self.error_codes)

    def completion_stream(self, call: CompletionCall) -> AzureStream:
        return AzureStream(self.spec.name, self.error_codes)


def endpoint_of(base_url: str) -> str:
    """The resource endpoint (`https://NAME.openai.azure.com`), also when given with `/openai` or
    `/openai/v1` after it: the surface option, not the URL, chooses the path."""
    url = base_url.rstrip("/")
    for suffix in ("/openai/v1", "/openai"):
        if url.endswith(suffix):
            return url[: -len(suffix)]
    return url


# ---------------------------------------------------------------------- zero config
def from_env(env: Mapping[str, str]) -> list[ProviderSpec]:
    """The provider as the openai SDK's `AzureOpenAI()` would connect: the endpoint, an Entra ID
    token or else the API key, the api-version (empty variables count as unset)."""
    endpoint, token, key = env.get(ENDPOINT_ENV), env.get(AD_TOKEN_ENV), env.get(API_KEY_ENV)
    if not endpoint or not (token or key):
        return []
    if not endpoint.startswith(("https://", "http://")):
        raise ConfigError([f"{ENDPOINT_ENV}: must be the resource endpoint, e.g. https://NAME.openai.azure.com"])
    try:
        options = AzureOptions(api_version=env.get(VERSION_ENV) or None, auth="entra_id" if token else "api_key")
    except ValidationError:
        raise ConfigError([f"{VERSION_ENV}: not an api-version (e.g. {DEFAULT_API_VERSION})"]) from None
    return [ProviderSpec(name=NAME, type=NAME, display_name="Azure OpenAI", base_url=endpoint.rstrip("/"),
                         api_key=Secret(token or key or ""), options=options.model_dump())]


def env_models(spec: ProviderSpec, env: Mapping[str, str]) -> list[ModelSpec]:
    """AZURE_OPENAI_DEPLOYMENTS: `name` or `name=model`, comma-separated; each deployment is
    served under its own name, priced and described as its model (by default its name, as the
    Azure portal names a deployment after its model)."""
    entries = [e.strip() for e in env.get(DEPLOYMENTS_ENV, "").split(",") if e.strip()]
    if len(entries) > MAX_ENV_DEPLOYMENTS:
        raise ConfigError([f"{DEPLOYMENTS_ENV}: at most {MAX_ENV_DEPLOYMENTS} deployments"])
    models: dict[str, ModelSpec] = {}
    for entry in entries:
        deployment, named, model = (part.strip() for part in entry.partition("="))
        model = model or ("" if named else deployment)
        if not DEPLOYMENT_NAME.match(deployment) or not DEPLOYMENT_NAME.match(model):
            raise ConfigError([f"{DEPLOYMENTS_ENV}: '{entry[:80]}' is not `deployment` or `deployment=model` "
                               "(letters, digits, '.', '_', '-'; at most 64 characters each)"])
        pricing = embedding_pricing(model, "azure") if is_embedding_model(model) else lookup_pricing(model, "azure")
        source = None if pricing is None else "table"
        models.setdefault(deployment, ModelSpec(
            id=deployment, deployments=(Deployment(spec.name, deployment, pricing=pricing, region=spec.region,
                                                   price_source=source),),
            capabilities=capabilities(model, spec), pricing=pricing, owned_by=spec.name, price_source=source))
    return list(models.values())


def capabilities(model_id: str, spec: ProviderSpec) -> Capabilities:
    """What a deployment of this model can do (by the OpenAI model's name)."""
    if is_embedding_model(model_id):
        return EMBEDDING
    if "instruct" in model_id or model_id.startswith(("davinci", "babbage")):  # text completion only
        return Capabilities(chat=False, completion=True, function_calling=False, json_mode=False)
    return Capabilities(vision=model_id.startswith(VISION_PREFIXES))


PROVIDER = ProviderType(
    name=NAME, display_name="Azure OpenAI",
    build=lambda spec: build_http_provider(spec, AzureAdapter(spec)),
    endpoints=frozenset({"chat", "completions", "embeddings"}), options=AzureOptions,
    # The preset names the zero-config provider and its price table; no key variable of its own:
    # `from_env` reads the SDK's variables, `env_models` lists the deployments.
    presets=(Preset(NAME, NAME, "Azure OpenAI", "", (), prices_id="azure", vision_prefixes=VISION_PREFIXES),),
    from_env=from_env, env_models=env_models, capabilities=capabilities,
    # A deployment named after its model (the portal's default) is that OpenAI model.
    canonical_id=lambda model_id: model_id,
)
