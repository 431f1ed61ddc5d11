"""The Bedrock provider: AWS credentials, SigV4 signing (botocore's signer) and the adapter.

Credentials come from botocore's standard chain (environment, shared profile, web identity,
container or instance role), resolved off the event loop when the provider starts. Each request
is signed with a frozen snapshot of them, which is pure; temporary credentials are refreshed in a
worker thread before they expire, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any
from urllib.parse import quote

import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import RefreshableCredentials

from ...catalog import ProviderSpec
from ...errors import FailureKind, InvalidRequest, UpstreamFailure
from ...upstream.client import Transport, UpstreamRequest
from ...upstream.lean_client import make_upstream_client
from ..base import ChatCall, CompletionCall, EmbeddingCall, json_object, json_or_none, malformed
from ..http import HttpProvider
from . import REGION
from .converse import error_type, failure, from_converse, to_converse
from .embed import BedrockEmbeddings
from .stream import ConverseStream, EventStreamParser

log = logging.getLogger("parrotrouter.providers")

SIGNING_NAME = "bedrock"  # bedrock-runtime signs as "bedrock" (its service model's signingName)
START_WAIT = 10.0  # seconds start-up waits for the credential chain before going on without it
RETRY_AFTER = 30.0  # seconds between two attempts to resolve missing credentials
MANDATORY_REFRESH = 10 * 60  # botocore's: with less left, requests wait for fresh credentials

# (credentials or None, region or None), from the chain; runs in a worker thread.
Resolver = Callable[[], tuple[Any, str | None]]


def chain_resolver(profile: str | None) -> Resolver:
    """botocore's credential chain and region (env, then the profile's config)."""

    def resolve() -> tuple[Any, str | None]:
        import botocore.session

        session = botocore.session.Session(profile=profile)
        credentials = session.get_credentials()
        region = os.environ.get("AWS_REGION") or session.get_config_variable("region")
        return credentials, region

    return resolve


def endpoint(region: str) -> str:
    return f"https://bedrock-runtime.{region}.amazonaws.com" + (".cn" if region.startswith("cn-") else "")


class AwsCredentials:
    """The provider's AWS credentials: resolved once, refreshed off the loop, frozen for signing."""

    def __init__(self, resolve: Resolver, provider: str) -> None:
        self._resolve = resolve
        self._provider = provider
        self._source: Any = None  # botocore Credentials (RefreshableCredentials for temporary ones)
        self._frozen: Any = None  # botocore ReadOnlyCredentials: what requests are signed with
        self.region: str | None = None
        self._task: asyncio.Future[None] | None = None
        self._failed_at = 0.0

    async def start(self) -> None:
        """Resolve the chain; a slow chain (an unreachable instance role) does not hold start-up."""
        task = self._load()
        with contextlib.suppress(TimeoutError, Exception):
            await asyncio.wait_for(asyncio.shield(task), START_WAIT)

    def _load(self) -> asyncio.Future[None]:
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())
        return self._task

    async def _run(self) -> None:
        try:
            if self._source is None:
                self._source, region = await asyncio.to_thread(self._resolve)
                self.region = self.region or region
            if self._source is not None:  # botocore refreshes (or fetches deferred ones) under its lock
                self._frozen = await asyncio.to_thread(self._source.get_frozen_credentials)
        except Exception as exc:
            log.warning("provider %s: the AWS credential chain failed (%s)", self._provider, type(exc).__name__)
        if self._frozen is None:
            self._failed_at = time.monotonic()
            log.warning("provider %s: no AWS credentials found (environment, profile or role)", self._provider)

    @property
    def ready(self) -> bool:
        return self._frozen is not None

    async def fresh(self) -> None:
        """Before a request: credentials near their expiry are refreshed in a worker thread (the
        request waits only when they are about to expire), missing ones looked up again."""
        source = self._source
        if self._frozen is None:
            if time.monotonic() - self._failed_at >= RETRY_AFTER or (self._task is not None and not self._task.done()):
                await asyncio.shield(self._load())
            if self._frozen is None:
                raise UpstreamFailure(f"The provider '{self._provider}' has no AWS credentials.",
                                      kind=FailureKind.AUTH)
        elif isinstance(source, RefreshableCredentials) and source.refresh_needed():
            task = self._load()
            if source.refresh_needed(MANDATORY_REFRESH):
                await asyncio.shield(task)

    def frozen(self) -> Any:
        """The snapshot to sign with (no I/O)."""
        if self._frozen is None:
            raise UpstreamFailure(f"The provider '{self._provider}' has no AWS credentials.", kind=FailureKind.AUTH)
        return self._frozen


class BedrockAdapter(BedrockEmbeddings):
    """Converse and ConverseStream (and InvokeModel for embeddings: `embed.py`) over HTTP, signed
    per request (pure once `bind` has run)."""

    def __init__(self, spec: ProviderSpec, credentials: AwsCredentials | None) -> None:
        self.spec = spec
        self.credentials = credentials  # None: the spec's api_key is a Bedrock API key (bearer)
        self.region: str | None = spec.options.get("region")
        self.base_url = spec.base_url

    def bind(self, region: str) -> None:
        self.region = region
        self.base_url = self.base_url or endpoint(region)

    def url(self, model: str, stream: bool) -> str:
        # The model id is one path segment, every reserved character escaped, as botocore
        # serialises it (inference profile ids contain ':', ARNs also '/').
        return f"{self.base_url}/model/{quote(model, safe='')}/{'converse-stream' if stream else 'converse'}"

    def signed_headers(self, url: str, body: bytes) -> dict[str, str]:
        headers = {"Content-Type": "application/json", **self.spec.headers}  # what botocore sends
        if self.credentials is None:
            assert self.spec.api_key is not None
            headers["Authorization"] = f"Bearer {self.spec.api_key.reveal()}"
            return headers
        request = AWSRequest(method="POST", url=url, data=body, headers=headers)
        SigV4Auth(self.credentials.frozen(), SIGNING_NAME, self.region).add_auth(request)
        return dict(request.headers.items())

    def chat_request(self, call: ChatCall) -> UpstreamRequest:
        if self.base_url is None:
            raise UpstreamFailure(f"The provider '{self.spec.name}' has no AWS region.", kind=FailureKind.AUTH)
        url = self.url(call.deployment.upstream_model, call.stream)
        body = orjson.dumps(to_converse(call.request, call.model.max_output_tokens))
        return UpstreamRequest(url, body, self.signed_headers(url, body), call.stream, encoded_url=True)

    def chat_response(self, body: bytes, call: ChatCall) -> dict[str, Any]:
        resp = json_object(body, "response")
        return from_converse(resp)

    def chat_stream(self, call: ChatCall) -> ConverseStream:
        return ConverseStream(self.spec.name)

    def completion_request(self, call: CompletionCall) -> UpstreamRequest:
        raise InvalidRequest("Bedrock has no text completions endpoint; use /v1/chat/completions.", param="model")

    def completion_response(self, body: bytes, call: CompletionCall) -> dict[str, Any]:
        raise malformed("completion")  # never reached: completion_request refuses first

    def completion_stream(self, call: CompletionCall) -> ConverseStream:
        return ConverseStream(self.spec.name)

    def error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamFailure:
        parsed = json_or_none(body)
        message = (parsed.get("message") or parsed.get("Message")) if isinstance(parsed, dict) else None
        return failure(error_type(headers, parsed), status, headers, message, self.spec.name)


class BedrockProvider(HttpProvider):
    def __init__(self, spec: ProviderSpec, transport: Transport | None = None,
                 resolve: Resolver | None = None) -> None:
        bearer = spec.api_key is not None
        self.credentials = None if bearer else AwsCredentials(
            resolve or chain_resolver(spec.options.get("profile")), spec.name)
        self.bedrock = BedrockAdapter(spec, self.credentials)
        super().__init__(spec, self.bedrock, supports_completions=False, transport=transport,
                         parser=EventStreamParser)

    async def start(self) -> None:
        region = self.bedrock.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if self.credentials is not None:
            self.credentials.region = region
            await self.credentials.start()
            region = self.credentials.region
        if not region or not re.fullmatch(REGION, region):
            raise RuntimeError(f"provider '{self.name}': no valid AWS region (set options.region or AWS_REGION)")
        self.bedrock.bind(region)
        if self.client is None:
            assert self.bedrock.base_url is not None
            self.client = make_upstream_client(self.bedrock.base_url, self.spec.timeouts, self.spec.max_connections,
                                               unix_socket=self.spec.unix_socket)

    def ready(self) -> bool:
        return self.credentials is None or self.credentials.ready

    async def chat(self, call: ChatCall) -> dict[str, Any]:
        if self.credentials is not None:
            await self.credentials.fresh()
        return await super().chat(call)

    async def embeddings(self, call: EmbeddingCall) -> dict[str, Any]:
        if self.credentials is not None:
            await self.credentials.fresh()
        return await super().embeddings(call)

    async def chat_stream(self, call: ChatCall) -> AsyncIterator[list[dict[str, Any]]]:
        if self.credentials is not None:
            await self.credentials.fresh()
        batches = super().chat_stream(call)
        try:
            async for batch in batches:
                yield batch
        finally:  # closing this stream (a client gone) closes the upstream's at once
            aclose = getattr(batches, "aclose", None)
            if aclose is not None:
                await aclose()
