"""An in-process world for unit tests of the serving core and the API: a catalog of scripted fake
providers, the real router, and an `AppState` without a database (usage records kept in memory)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

from parrotrouter.accounting.usage import DiscardingSink
from parrotrouter.auth.principal import MASTER, Principal
from parrotrouter.catalog import Catalog, Deployment, ModelSpec, ProviderSpec
from parrotrouter.errors import FailureKind, UpstreamFailure
from parrotrouter.pricing import ModelPricing
from parrotrouter.providers.base import ChatCall, CompletionCall, Provider
from parrotrouter.routing.router import Router
from parrotrouter.settings import load_settings
from parrotrouter.state import AppState

PRICE = ModelPricing(prompt_mtok=Decimal("0.15"), completion_mtok=Decimal("0.60"))


def answer(text: str = "Hello there", usage: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                        "finish_reason": "stop"}]}
    if usage:
        out["usage"] = {"prompt_tokens": 5, "completion_tokens": 2}
    return out


def words(*parts: str, usage: bool = False) -> list[list[dict[str, Any]]]:
    batches = [[{"choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]}] for p in parts]
    batches.append([{"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}])
    if usage:
        batches.append([{"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": len(parts)}}])
    return batches


class Scripted(Provider):
    """Each call takes the next outcome of its script: an answer, a list of stream batches, an
    `UpstreamFailure` to raise, or a `float` (seconds to hang before a failure: a stall)."""

    def __init__(self, name: str, script: list[Any] | None = None) -> None:
        super().__init__(ProviderSpec(name=name, type="openai", display_name=name, base_url="http://unused"))
        self.script = list(script or [])
        self.calls: list[ChatCall | CompletionCall] = []
        self.closed_streams = 0

    def _next(self, call: ChatCall | CompletionCall) -> Any:
        self.calls.append(call)
        return self.script.pop(0) if self.script else answer()

    async def chat(self, call: ChatCall) -> dict[str, Any]:
        outcome = self._next(call)
        if isinstance(outcome, BaseException):
            raise outcome
        if isinstance(outcome, float):
            await asyncio.sleep(outcome)
            raise UpstreamFailure("stalled", kind=FailureKind.TIMEOUT)
        assert isinstance(outcome, dict)
        return outcome

    async def chat_stream(self, call: ChatCall) -> AsyncIterator[list[dict[str, Any]]]:
        outcome = self._next(call)
        if isinstance(outcome, BaseException):
            raise outcome
        try:
            for batch in outcome if isinstance(outcome, list) else words("Hello", " there"):
                await asyncio.sleep(0)
                yield [dict(chunk) for chunk in batch]
        finally:
            self.closed_streams += 1

    async def completion(self, call: CompletionCall) -> dict[str, Any]:
        self._next(call)
        return {"choices": [{"index": 0, "text": "done", "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1}}


def world(models: dict[str, list[Scripted]], **settings: str) -> AppState:
    """A state whose models are served by the given providers, in priority order."""
    providers: dict[str, Provider] = {}
    specs: list[ModelSpec] = []
    for model_id, deployed in models.items():
        for p in deployed:
            providers[p.name] = p
        specs.append(ModelSpec(id=model_id, deployments=tuple(Deployment(p.name, model_id, pricing=PRICE)
                                                             for p in deployed),
                               pricing=PRICE, strategy="priority", max_output_tokens=1000))
    catalog = Catalog([p.spec for p in providers.values()], specs)
    env = {f"PARROTROUTER_{k.upper()}": v for k, v in settings.items()}
    return AppState(settings=load_settings(env=env), catalog=catalog, providers=providers,
                    router=Router(catalog, providers), authenticator=_Master(), usage=DiscardingSink())


class _Master:
    def authenticate(self, token: str | None) -> Principal:
        return MASTER
