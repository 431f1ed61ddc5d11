"""Run one generation request (chat or text completion) and answer it as JSON or SSE.

Shared by the chat and completions endpoints: route, call the provider, normalise what comes
back, account for it in `finally` (also when the client goes away or the upstream fails).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import web

from ..accounting.credits import CreditManager, Reservation
from ..accounting.usage import STATUS_CLIENT_CLOSED, UsageRecord
from ..auth.principal import Principal
from ..catalog import ModelSpec
from ..errors import ParrotError, UpstreamFailure
from ..pricing import ModelPricing
from ..protocol.normalize import normalize_chunk, normalize_completion
from ..providers.base import ChatCall, CompletionCall, Provider
from ..ratelimit.rules import limits_for
from ..routing.policy import RoutingPolicy, parse_policy
from ..routing.router import Candidate, Plan
from ..state import AppState
from ..tokens import count_text
from .failover import Attempts, attempts_header, close_quietly, open_stream

SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}
_DONE = b"data: [DONE]\n\n"

Call = ChatCall | CompletionCall


@dataclasses.dataclass(frozen=True, slots=True)
class Endpoint:
    """What differs between the chat and text completion endpoints."""

    name: str
    id_prefix: str
    object_type: str
    chunk_type: str
    make_call: Callable[[Any, dict[str, Any], Candidate], Call]
    run: Callable[[Provider, Any], Any]
    run_stream: Callable[[Provider, Any], AsyncIterator[list[dict[str, Any]]]]
    # Prompt tokens counted by the gateway, for upstreams that report no usage.
    count_prompt: Callable[[Any, str], int]


def new_id(prefix: str) -> str:
    """Unique and roughly time-ordered (the ledger's primary-key index is appended to, not
    scattered into): 48 bits of milliseconds, then 80 random bits."""
    return prefix + (int(time.time() * 1000) & 0xFFFF_FFFF_FFFF).to_bytes(6, "big").hex() + os.urandom(10).hex()


def _sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


async def serve(state: AppState, http: web.Request, endpoint: Endpoint, principal: Principal,
                request: Any, raw: dict[str, Any]) -> web.StreamResponse:
    record = UsageRecord(
        id=new_id(endpoint.id_prefix), endpoint=endpoint.name, requested_model=request.model,
        key_id=principal.key_id, account_id=principal.account_id, streamed=bool(request.stream),
        user=getattr(request, "user", None),
    )
    try:
        policy = parse_policy(http.headers, raw)
        plan = _plan(state, endpoint, principal, request, raw, policy)
        first = plan.candidates[0]
        record.served_model, record.provider = first.model.id, first.deployment.provider
        record.deployment, record.pricing = first.deployment.id, first.deployment.pricing or first.model.pricing
        if state.limiter is not None:
            await _admit(state, http, record, principal, endpoint, request, first.model)
        if state.accounts is not None:
            record.reservation = await _reserve(state.accounts.credits, principal, endpoint, request,
                                                http.get("body_size", 0), plan.candidates)
        attempts = Attempts(plan, policy, state.router.health, record)
        if request.stream:
            return await _stream(state, http, endpoint, attempts, request, raw, record)
        result, cand = await attempts.run(lambda c: endpoint.run(c.provider, endpoint.make_call(request, raw, c)))
        _attempts_header(http, record)
        normalize_completion(result, id=record.id, created=int(record.created_at), model=cand.model.id,
                             provider=cand.deployment.provider, object_type=endpoint.object_type)
        record.observe_usage(result.get("usage"))
        choices = result["choices"]
        record.finish_reason = choices[0]["finish_reason"] if choices else None
        if not record.usage_reported:
            count = _deferred_count(endpoint, request, cand.model.id, [_choice_text(c) for c in choices])
            record.prompt_tokens, record.completion_tokens = count()
        if "usage" not in result:
            result["usage"] = record.usage_payload()
        return web.Response(body=orjson.dumps(result), content_type="application/json")
    except ParrotError as err:
        _attempts_header(http, record)
        client_err = err.to_client_error() if isinstance(err, UpstreamFailure) else err
        record.status, record.error_code = client_err.status, client_err.code
        raise client_err from None
    except asyncio.CancelledError:
        record.status, record.error_code = STATUS_CLIENT_CLOSED, "client_closed"
        raise
    finally:
        record.settle()
        if record.limit_ticket is not None and state.limiter is not None:
            _reconcile_later(state, record)
        state.usage.record(record)


def _plan(state: AppState, endpoint: Endpoint, principal: Principal, request: Any, raw: dict[str, Any],
          policy: RoutingPolicy) -> Plan:
    """The deployments to try, without the models this key may not use (403 if none is left)."""
    plan = state.router.plan(request.model, request, policy, raw,
                             lambda: endpoint.count_prompt(request, request.model))
    keys = principal.policy
    if keys.models_allowed is None and keys.models_denied is None:
        return plan
    first = plan.candidates[0].model.id
    allowed = [c for c in plan.candidates
               if keys.allows_model(c.model.id) or (c.model.id == first and keys.allows_model(request.model, first))]
    if not allowed:
        keys.check_model(request.model, first)  # raises the 403 that names the model
    plan.candidates = allowed
    return plan


def _attempts_header(http: web.Request, record: UsageRecord) -> None:
    if record.attempts:
        http.setdefault("extra_headers", {})["X-ParrotRouter-Attempts"] = attempts_header(record)


class _Relay:
    """Per-stream state: normalises each chunk, tracks usage and finish, renders SSE frames."""

    def __init__(self, endpoint: Endpoint, candidate: Candidate, record: UsageRecord) -> None:
        self.record = record
        self.meta: dict[str, Any] = {"id": record.id, "created": int(record.created_at), "model": candidate.model.id,
                     "provider": candidate.deployment.provider, "object_type": endpoint.chunk_type}
        self.is_chat = endpoint.chunk_type == "chat.completion.chunk"
        self.roles_sent: set[int] = set()
        self.texts: list[str] = []  # kept only to count tokens if the upstream reports no usage

    def frames(self, batch: list[dict[str, Any]]) -> bytes:
        out = []
        record, is_chat = self.record, self.is_chat
        for chunk in batch:
            usage = chunk.pop("usage", None)
            if usage:
                record.observe_usage(usage)
            if not chunk.get("choices"):
                continue  # usage-only (ours to send) or empty chunks carry nothing for the client
            meta = self.meta
            normalize_chunk(chunk, id=meta["id"], created=meta["created"], model=meta["model"],
                            provider=meta["provider"], object_type=meta["object_type"])
            for choice in chunk["choices"]:
                if is_chat and choice["index"] not in self.roles_sent:
                    self.roles_sent.add(choice["index"])
                    choice["delta"].setdefault("role", "assistant")
                if choice["finish_reason"] is not None and choice["index"] == 0:
                    record.finish_reason = choice["finish_reason"]
                self.texts.append(_delta_text(choice) if is_chat else choice.get("text") or "")
            out.append(b"data: " + orjson.dumps(chunk) + b"\n\n")
        return b"".join(out)

    def usage_frame(self) -> bytes:
        meta = self.meta
        return _sse({"id": meta["id"], "object": meta["object_type"], "created": meta["created"],
                     "model": meta["model"], "provider": meta["provider"], "choices": [],
                     "usage": self.record.usage_payload()})


async def _stream(state: AppState, http: web.Request, endpoint: Endpoint, attempts: Attempts, request: Any,
                  raw: dict[str, Any], record: UsageRecord) -> web.StreamResponse:
    """Relay the stream of the first deployment that produces content (earlier failures fail
    over silently); after that, a failure ends the stream with an error frame, never [DONE]."""

    async def attempt(cand: Candidate) -> tuple[list[list[dict[str, Any]]], AsyncIterator[list[dict[str, Any]]]]:
        batches = endpoint.run_stream(cand.provider, endpoint.make_call(request, raw, cand)).__aiter__()
        first_token = state.catalog.providers[cand.deployment.provider].timeouts.first_token
        opened = await open_stream(batches, first_token)
        record.first_token()
        return opened

    (held, batches), candidate = await attempts.run(attempt)
    _attempts_header(http, record)
    response = web.StreamResponse(status=200, headers=SSE_HEADERS)
    relay = _Relay(endpoint, candidate, record)
    try:
        await response.prepare(http)
        try:
            for batch in held:
                data = relay.frames(batch)
                if data:
                    await response.write(data)
            async for batch in batches:
                data = relay.frames(batch)
                if data:
                    await response.write(data)
        except ParrotError as err:
            await _error_frame(response, err, record, relay.meta, relay.is_chat)
            return response
        if not record.usage_reported:
            count = _deferred_count(endpoint, request, candidate.model.id, relay.texts)
            if request.include_usage:
                record.prompt_tokens, record.completion_tokens = count()
            else:
                record.deferred_count = count
        await response.write(relay.usage_frame() + _DONE if request.include_usage else _DONE)
    except ConnectionResetError:
        record.status, record.error_code = STATUS_CLIENT_CLOSED, "client_closed"
    finally:
        await close_quietly(batches)
    return response


async def _error_frame(response: web.StreamResponse, err: ParrotError, record: UsageRecord,
                       meta: dict[str, Any], is_chat: bool) -> None:
    client_err = err.to_client_error() if isinstance(err, UpstreamFailure) else err
    record.status, record.error_code = client_err.status, client_err.code
    choice: dict[str, Any] = {"index": 0, "finish_reason": "error"}
    choice["delta" if is_chat else "text"] = {} if is_chat else ""
    frame = {"id": meta["id"], "object": meta["object_type"], "created": meta["created"],
             "model": meta["model"], "provider": meta["provider"], "choices": [choice],
             **client_err.envelope()}
    await response.write(_sse(frame))


def _delta_text(choice: dict[str, Any]) -> str:
    delta = choice["delta"]
    text = delta.get("content") or ""
    for call in delta.get("tool_calls") or ():
        fn = call.get("function") or {}
        text += (fn.get("name") or "") + (fn.get("arguments") or "")
    return text


def _choice_text(choice: dict[str, Any]) -> str:
    message = choice.get("message")
    if message is None:
        return str(choice.get("text") or "")
    return _delta_text({"delta": message})


def _deferred_count(endpoint: Endpoint, request: Any, model: str,
                    texts: list[str]) -> Callable[[], tuple[int, int]]:
    """The upstream reported no usage: count with the model family's tokenizer, when needed."""

    def count() -> tuple[int, int]:
        return endpoint.count_prompt(request, model), count_text("".join(texts), model)

    return count


DEFAULT_RESERVED_OUTPUT = 16384  # when neither the request nor the catalog bounds the output
_PER_IMAGE_BOUND = 3000  # upper bound of the prompt tokens of one image, for the cheap bound


async def _reserve(credits: CreditManager, principal: Principal, endpoint: Endpoint, request: Any,
                   body_size: int, candidates: list[Candidate]) -> Reservation | None:
    """Hold the request's maximum cost: prompt tokens (bounded cheaply by the body's bytes, or
    counted with the model family's tokenizer when the budget is tight) plus the output cap, at
    the dearest price among the deployments it may fail over to."""
    if principal.is_master:
        return None
    priced: list[tuple[ModelPricing, int, str]] = []  # distinct (price, output cap) pairs
    for cand in candidates:
        pricing = cand.deployment.pricing or cand.model.pricing
        if pricing is not None and not pricing.is_free:
            output = request.output_limit or cand.model.max_output_tokens or DEFAULT_RESERVED_OUTPUT
            if not any(p is pricing and out == output for p, out, _ in priced):
                priced.append((pricing, output, cand.model.id))
    if not priced:
        return None
    prompt_bound = body_size + _PER_IMAGE_BOUND * _image_count(request)
    bound = max([p.max_cost(prompt_bound, out) for p, out, _ in priced])

    def precise() -> Decimal:
        return max([p.max_cost(endpoint.count_prompt(request, model), out) for p, out, model in priced])

    return await credits.reserve(principal, bound, precise)


def _image_count(request: Any) -> int:
    has_images = getattr(request, "has_images", None)
    if has_images is None or not has_images():
        return 0
    return sum(1 for m in request.messages if isinstance(getattr(m, "content", None), list)
               for p in m.content if getattr(p, "image_url", None) is not None)


DEFAULT_TPM_OUTPUT = 4096  # output tokens a token limit reserves when nothing bounds the answer


async def _admit(state: AppState, http: web.Request, record: UsageRecord, principal: Principal,
                 endpoint: Endpoint, request: Any, model: ModelSpec) -> None:
    """Take the request from its rate limits (429 when over); the decision's headers go on the
    response, whatever it turns out to be."""
    assert state.limiter is not None
    limits = limits_for(principal, getattr(request, "user", None), state.settings.limit_defaults)
    if not limits:
        return
    tokens = 0
    if any(lim.tokens for lim in limits):
        output = request.output_limit or model.max_output_tokens or DEFAULT_TPM_OUTPUT
        tokens = endpoint.count_prompt(request, model.id) + output
    decision = await state.limiter.admit(limits, tokens)
    http["extra_headers"] = decision.headers
    record.limit_ticket = decision.ticket


def _reconcile_later(state: AppState, record: UsageRecord) -> None:
    """Replace the token reservation by the real count, off the response path."""
    ticket, limiter = record.limit_ticket, state.limiter
    assert ticket is not None and limiter is not None
    if record.deferred_count is not None:
        record.finalize()
    task = asyncio.get_running_loop().create_task(
        limiter.reconcile(ticket, record.prompt_tokens + record.completion_tokens))
    state.background.add(task)
    task.add_done_callback(state.background.discard)
