"""Run one generation request (chat or text completion) and answer it as JSON or SSE.

Shared by the chat and completions endpoints: route, call the provider, normalise what comes
back, account for it in `finally` (also when the client goes away or the upstream fails).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import web

from ..accounting.bounds import Billable, exact_tokenizer
from ..accounting.credits import CreditManager, Reservation
from ..accounting.usage import OFF_LOOP_COUNT, STATUS_CLIENT_CLOSED, UsageRecord
from ..auth.permissions import Policy
from ..auth.principal import Principal
from ..catalog import AUTO, Deployment, ModelSpec
from ..errors import ParrotError, ServiceUnavailable, UpstreamFailure
from ..pricing import ModelPricing
from ..protocol.normalize import normalize_chunk, normalize_completion, usage_dict
from ..providers.base import ChatCall, CompletionCall, Provider, malformed
from ..ratelimit.rules import limits_for
from ..routing.policy import DEFAULT as DEFAULT_POLICY
from ..routing.policy import RoutingPolicy, parse_policy
from ..routing.router import Candidate, Permit, Plan
from ..state import AppState
from ..tokens import count_text, encoding_ready
from .failover import Attempts, attempts_header, close_quietly, open_stream

log = logging.getLogger("parrotrouter.api")
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
    # Upper bounds of the billed tokens, for credit reservations: (request, raw, upstream model,
    # output cap) tokenized, and (request, raw, body bytes, output cap) without a tokenizer.
    billable: Callable[[Any, dict[str, Any], str, int], Billable]
    cheap_billable: Callable[[Any, dict[str, Any], int, int], Billable]


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
    attempts: Attempts | None = None
    texts: list[str] = []  # a non-streaming answer's texts, once in hand
    prompt = _PromptCount(endpoint, request, http.get("body_size", 0))
    try:
        policy = parse_policy(http.headers, raw)
        if _asks_auto(request.model, policy):  # auto weighs the prompt against context windows
            await prompt.prefetch()
        plan = _plan(state, principal, request, raw, policy, prompt)
        first = plan.candidates[0]
        record.served_model, record.provider = first.model.id, first.deployment.provider
        record.deployment, record.pricing = first.deployment.id, first.deployment.pricing or first.model.pricing
        if state.limiter is not None:
            await _admit(state, http, record, principal, prompt, request, first.model)
        if state.accounts is not None:
            if not state.accounts.ledger.accepting:  # never serve what could not be billed
                raise ServiceUnavailable("The usage ledger cannot keep up (its database is failing); retry shortly.",
                                         retry_after=5)
            record.reservation = await _reserve(state.accounts.credits, principal, endpoint, request, raw,
                                                http.get("body_size", 0), plan.candidates)
        attempts = Attempts(plan, policy, state.router.health, record, state.budget)
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
            texts = [_choice_text(c) for c in choices]
            record.prompt_tokens, record.completion_tokens = await _count_now(
                _deferred_count(endpoint, request, cand.model.id, texts), http.get("body_size", 0) + _size(texts),
                cand.model.id)
        if "usage" not in result:
            result["usage"] = record.usage_payload()
        return web.Response(body=orjson.dumps(result), content_type="application/json")
    except ParrotError as err:
        _attempts_header(http, record)
        client_err = err.to_client_error() if isinstance(err, UpstreamFailure) else err
        record.status, record.error_code = client_err.status, client_err.code
        raise client_err from None
    except asyncio.CancelledError:
        if record.ended_by is None:  # cut while waiting for the upstream (a stream records its own end)
            _ended(state, record, None)
            if attempts is not None and attempts.calls and not record.usage_reported:
                # the upstream had the prompt (and maybe answered): it bills that, so do we
                record.deferred_count = _deferred_count(endpoint, request, record.served_model or request.model,
                                                        texts)
                record.deferred_size = http.get("body_size", 0) + _size(texts)
        raise
    finally:
        record.settle()
        if record.limit_ticket is not None and state.limiter is not None:
            _reconcile_later(state, record)
        state.usage.record(record)


def _plan(state: AppState, principal: Principal, request: Any, raw: dict[str, Any], policy: RoutingPolicy,
          prompt_tokens: Callable[[], int]) -> Plan:
    """The deployments to try: only those of models (and providers) this key may use."""
    return state.router.plan(request.model, request, policy, raw, prompt_tokens, permit=permit_for(principal.policy))


def _asks_auto(model: str, policy: RoutingPolicy) -> bool:
    if model == AUTO:
        return True
    if policy is DEFAULT_POLICY:
        return False
    return AUTO in (policy.primary_model, *policy.fallback_models, *(fb.model for fb in policy.conditional_fallbacks))


def permit_for(keys: Policy) -> Permit | None:
    """The key's model permissions as the router asks them. A pattern allows a deployment when it
    matches one of the model's own names: its id, `provider/id` (so `openai/*` can allow or deny
    a provider), or the alias — or `auto` — it was asked by; never another name that merely
    resolves to it (a `provider/upstream-model` name may spell another model's id). Denied
    patterns are matched against every name, those included. None: unrestricted."""
    if keys.models_allowed is None and keys.models_denied is None:
        return None
    denied = keys.models_denied

    def permit(name: str, model: ModelSpec, deployment: Deployment) -> bool:
        own = f"{deployment.provider}/{model.id}"
        if name in (model.id, own, AUTO) or name in model.aliases:
            return keys.allows_model(model.id, own, name)
        if not keys.allows_model(model.id, own):
            return False
        return denied is None or not (denied.fullmatch(name) or denied.fullmatch(deployment.id))

    return permit


def _ended(state: AppState, record: UsageRecord, by: str | None) -> None:
    """Who cut a request short: shutdown (the server is stopping), else the client, or `by`."""
    if state.stopping:
        record.status, record.error_code, record.ended_by = 503, "shutdown", "shutdown"
    elif by is None or by == "client":
        record.status, record.error_code, record.ended_by = STATUS_CLIENT_CLOSED, "client_closed", "client"
    else:
        record.ended_by = by


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
            if usage and (usage := usage_dict(usage)):
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
    over silently); after that, a failure ends the stream with an error frame, never [DONE].

    However the stream ends — the client hangs up, the upstream fails, the server shuts down — the
    request is billed for its prompt and for every token relayed so far (counted with the model
    family's tokenizer when the upstream reported no usage), and the record says who ended it."""

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
    task = asyncio.current_task()
    if task is not None:
        state.streams.add(task)
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
            record.ended_by = "upstream"
            await _error_frame(response, err, record, relay.meta, relay.is_chat)
            return response
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception:  # an upstream chunk the relay could not handle: end the stream cleanly
            log.exception("relaying a stream of %s failed", candidate.deployment.id)
            record.ended_by = "upstream"
            await _error_frame(response, malformed("stream chunk"), record, relay.meta, relay.is_chat)
            return response
        if not record.usage_reported:
            count = _deferred_count(endpoint, request, candidate.model.id, relay.texts)
            if request.include_usage:
                record.prompt_tokens, record.completion_tokens = await _count_now(
                    count, http.get("body_size", 0) + _size(relay.texts), candidate.model.id)
            else:
                record.deferred_count = count
                record.deferred_size = http.get("body_size", 0) + _size(relay.texts)
        await response.write(relay.usage_frame() + _DONE if request.include_usage else _DONE)
    except ConnectionResetError:
        _ended(state, record, "client")
    except asyncio.CancelledError:
        _ended(state, record, "client")
        if state.stopping:  # cut by shutdown: the client is told so
            await _cut_by_shutdown(response, record, relay)
        raise
    finally:
        if task is not None:
            state.streams.discard(task)
        if record.ended_by is not None:  # cut short: at least what was relayed, whatever was reported
            record.deferred_count = _cut_count(record, _deferred_count(endpoint, request, candidate.model.id,
                                                                       relay.texts))
            record.deferred_size = http.get("body_size", 0) + _size(relay.texts)
        await close_quietly(batches)
    return response


def _cut_count(record: UsageRecord, count: Callable[[], tuple[int, int]]) -> Callable[[], tuple[int, int]]:
    reported = (record.prompt_tokens, record.completion_tokens) if record.usage_reported else (0, 0)

    def at_least_relayed() -> tuple[int, int]:
        prompt, completion = count()
        return max(prompt, reported[0]), max(completion, reported[1])

    return at_least_relayed


async def _cut_by_shutdown(response: web.StreamResponse, record: UsageRecord, relay: _Relay) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(1.0):
            await _error_frame(response, ServiceUnavailable("The server is shutting down; the stream was cut. "
                                                            "Retry the request."), record, relay.meta, relay.is_chat)
            await response.write_eof()
    record.status, record.error_code, record.ended_by = 503, "shutdown", "shutdown"


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


_BILLED_DELTA_TEXTS = ("content", "reasoning", "reasoning_content", "refusal")


def _delta_text(choice: dict[str, Any]) -> str:
    """Every generated text of a delta (or message): what the upstream bills as completion tokens."""
    delta = choice["delta"]
    if not isinstance(delta, dict):
        return ""
    content = delta.get("content")
    if len(delta) == 1 or (len(delta) == 2 and "role" in delta):  # most chunks: the content alone
        return content if isinstance(content, str) else ""
    text = "".join([t for f in _BILLED_DELTA_TEXTS if isinstance(t := delta.get(f), str)])
    for call in delta.get("tool_calls") or ():
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict):
            text += "".join(t for f in ("name", "arguments") if isinstance(t := fn.get(f), str))
    audio = delta.get("audio")
    if isinstance(audio, dict) and isinstance(audio.get("transcript"), str):
        text += audio["transcript"]
    return text


def _choice_text(choice: dict[str, Any]) -> str:
    message = choice.get("message")
    if message is None:
        return str(choice.get("text") or "")
    return _delta_text({"delta": message})


_OFF_LOOP = OFF_LOOP_COUNT  # characters or bytes beyond which tokens are counted in a worker thread


class _PromptCount:
    """The request's prompt tokens (routing and token limits ask for them), counted at most once,
    in a worker thread for large bodies: tokenizing megabytes takes seconds of CPU, and tiktoken
    releases the GIL, so the event loop keeps serving meanwhile."""

    __slots__ = ("endpoint", "request", "size", "value")

    def __init__(self, endpoint: Endpoint, request: Any, size: int) -> None:
        self.endpoint, self.request, self.size = endpoint, request, size
        self.value: int | None = None

    async def prefetch(self) -> None:
        if self.value is None and (self.size >= _OFF_LOOP or not encoding_ready(self.request.model)):
            self.value = await asyncio.to_thread(self.endpoint.count_prompt, self.request, self.request.model)

    def __call__(self) -> int:
        if self.value is None:
            self.value = self.endpoint.count_prompt(self.request, self.request.model)
        return self.value


def _size(texts: list[str]) -> int:
    return sum(map(len, texts))


async def _count_now(count: Callable[[], tuple[int, int]], size: int, model: str) -> tuple[int, int]:
    """Counted in a worker thread when large, or when the model's tokenizer is not loaded yet."""
    return await asyncio.to_thread(count) if size >= _OFF_LOOP or not encoding_ready(model) else count()


def _deferred_count(endpoint: Endpoint, request: Any, model: str,
                    texts: list[str]) -> Callable[[], tuple[int, int]]:
    """The upstream reported no usage: count with the model family's tokenizer, when needed."""

    def count() -> tuple[int, int]:
        return endpoint.count_prompt(request, model), count_text("".join(texts), model)

    return count


DEFAULT_RESERVED_OUTPUT = 16384  # when neither the request nor the catalog bounds the output or context
_PRECISE_IN_THREAD = 256 * 1024  # bodies this large are tokenized off the event loop (tiktoken drops the GIL)


async def _reserve(credits: CreditManager, principal: Principal, endpoint: Endpoint, request: Any,
                   raw: dict[str, Any], body_size: int, candidates: list[Candidate]) -> Reservation | None:
    """Hold the request's maximum cost — everything the upstream can bill (`accounting/bounds.py`):
    the prompt (bounded cheaply by the body's bytes, or tokenized when the budget is tight) plus
    the output cap times every answer asked for, at the dearest price among the deployments it may
    fail over to."""
    if principal.is_master:
        return None
    priced: list[tuple[ModelPricing, int, str]] = []  # distinct (price, output cap, upstream model)
    for cand in candidates:
        pricing = cand.deployment.pricing or cand.model.pricing
        if pricing is not None and not pricing.is_free:
            # Without a cap from the client or the catalog, the context window is the only bound
            # on what the upstream may generate.
            output = (request.output_limit or cand.model.max_output_tokens or cand.model.context_length
                      or DEFAULT_RESERVED_OUTPUT)
            entry = (pricing, output, cand.deployment.upstream_model)
            if not any(p is pricing and out == output and m == entry[2] for p, out, m in priced):
                priced.append(entry)
    if not priced:
        return None
    caps = {out for _, out, _ in priced}
    cheap = {out: endpoint.cheap_billable(request, raw, body_size, out) for out in caps}
    bound = max([p.max_cost(cheap[out].prompt, cheap[out].output) for p, out, _ in priced])

    def precise_now() -> Decimal:
        costs = []
        for pricing, out, model in priced:
            billable = endpoint.billable(request, raw, model, out)
            costs.append(pricing.max_cost(billable.prompt, billable.output))
        return max(costs)

    async def precise() -> Decimal:
        if body_size >= _PRECISE_IN_THREAD or any(exact_tokenizer(m) and not encoding_ready(m) for _, _, m in priced):
            return await asyncio.to_thread(precise_now)
        return precise_now()

    return await credits.reserve(principal, bound, precise)


DEFAULT_TPM_OUTPUT = 4096  # output tokens a token limit reserves when nothing bounds the answer


async def _admit(state: AppState, http: web.Request, record: UsageRecord, principal: Principal,
                 prompt: _PromptCount, request: Any, model: ModelSpec) -> None:
    """Take the request from its rate limits (429 when over); the decision's headers go on the
    response, whatever it turns out to be."""
    assert state.limiter is not None
    limits = limits_for(principal, getattr(request, "user", None), state.settings.limit_defaults)
    if not limits:
        return
    tokens = 0
    if any(lim.tokens for lim in limits):
        output = request.output_limit or model.max_output_tokens or DEFAULT_TPM_OUTPUT
        await prompt.prefetch()
        tokens = prompt() + output
    decision = await state.limiter.admit(limits, tokens)
    http["extra_headers"] = decision.headers
    record.limit_ticket = decision.ticket


async def drain_streams(state: AppState) -> None:
    """On shutdown: give open streams the drain period to finish, then cut the rest — each ends with
    an error frame and is billed as ended by shutdown."""
    if state.streams:
        grace = max(0.0, state.settings.shutdown_timeout - 1.0)
        await asyncio.wait(set(state.streams), timeout=grace)
    state.stopping = True
    cut = set(state.streams)
    for task in cut:
        task.cancel()
    if cut:
        await asyncio.wait(cut, timeout=2.0)


def _reconcile_later(state: AppState, record: UsageRecord) -> None:
    """Replace the token reservation by the real count, off the response path."""
    ticket, limiter = record.limit_ticket, state.limiter
    assert ticket is not None and limiter is not None

    async def reconcile() -> None:
        await record.complete()
        await limiter.reconcile(ticket, record.prompt_tokens + record.completion_tokens)

    task = asyncio.get_running_loop().create_task(reconcile())
    state.background.add(task)
    task.add_done_callback(state.background.discard)
