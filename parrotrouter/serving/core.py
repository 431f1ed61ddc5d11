"""Serve one generation request: plan the route, take it from the rate limits, reserve its credits,
attempt the deployments with failover, normalise the answer, and record its usage in `finally`
(also when the client goes away, the upstream fails or the server shuts down).

Each step belongs to its layer — the route and the permission filter to routing and auth, the
tokens a limit takes to `ratelimit.admission`, the reservation bound to `accounting.reserve` —
and this module only puts them in order. `answer` serves a non-streaming request; `open_stream`
returns a `Stream` once its first content arrived (earlier failures fail over silently).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, Generic, TypeVar

import orjson

from ..accounting.reserve import PricedRoute, output_cap, pays_with_credits, reserve_max_cost
from ..accounting.usage import OFF_LOOP_COUNT, STATUS_CLIENT_CLOSED, UsageRecord
from ..catalog import AUTO
from ..errors import ParrotError, ServiceUnavailable, UpstreamFailure
from ..protocol.normalize import normalize_completion
from ..providers.base import malformed
from ..ratelimit.admission import admit
from ..routing.policy import DEFAULT as DEFAULT_POLICY
from ..routing.policy import RoutingPolicy
from ..routing.router import Candidate, Plan
from ..state import AppState
from ..store.content import ContentBudget, LoggedContent
from ..tokens import count_text, encoding_ready
from .attempts import Attempts, attempts_header, close_quietly
from .attempts import open_stream as open_upstream_stream
from .context import LogRequest, RequestContext
from .relay import Relay, choice_text
from .request import GenerationRequest
from .served import Served, keep_serving
from .trace import Forwarded
from .types import Chunks, JSONObject

log = logging.getLogger("parrotrouter.serving")


def new_id(prefix: str) -> str:
    """Unique and roughly time-ordered (the ledger's primary-key index is appended to, not
    scattered into): 48 bits of milliseconds, then 80 random bits."""
    return prefix + (int(time.time() * 1000) & 0xFFFF_FFFF_FFFF).to_bytes(6, "big").hex() + os.urandom(10).hex()


class _PromptCount:
    """The request's prompt tokens (routing and token limits ask for them), counted at most once,
    in a worker thread for large bodies or a tokenizer not loaded yet: tiktoken releases the GIL,
    so the event loop keeps serving meanwhile."""

    __slots__ = ("request", "value")

    def __init__(self, request: Served) -> None:
        self.request = request
        self.value: int | None = None

    async def prefetch(self) -> int:
        if self.value is None:
            request = self.request
            if request.body_size >= OFF_LOOP_COUNT or not encoding_ready(request.model):
                self.value = await asyncio.to_thread(request.count_prompt, request.model)
            else:
                self.value = request.count_prompt(request.model)
        return self.value

    def __call__(self) -> int:
        if self.value is None:
            self.value = self.request.count_prompt(self.request.model)
        return self.value


_R = TypeVar("_R", bound=Served)


class _Work(Generic[_R]):
    """One request on its way through: the usage record, the plan, the attempts."""

    def __init__(self, state: AppState, ctx: RequestContext, request: _R,
                 policy: RoutingPolicy) -> None:
        self.state, self.ctx, self.request, self.policy = state, ctx, request, policy
        principal = ctx.principal
        self.record = UsageRecord(
            id=new_id(request.shape.id_prefix), endpoint=request.shape.ledger_name, requested_model=request.model,
            key_id=principal.key_id, account_id=principal.account_id, streamed=request.stream, user=request.user,
            request_id=ctx.request_id)
        ctx.headers["X-Generation-Id"] = self.record.id  # on the answer, a stream, an error alike
        if ctx.logging is not None:
            _label(self.record, ctx.logging, _content_budget(state))
        self.prompt = _PromptCount(request)
        if state.tracing is not None:  # observe/tracing.py: the request's span, a child span per attempt
            ctx.trace = state.tracing.begin(self.record, request, ctx.trace_parent,
                                              state.catalog.knows(request.model))
        elif ctx.trace_parent is not None:
            ctx.trace = Forwarded(ctx.trace_parent)
        self.attempts: Attempts | None = None
        self.recorded = False

    async def prepare(self) -> Attempts:
        """Plan, admit and reserve: what comes before any upstream call."""
        state, request, record, policy = self.state, self.request, self.record, self.policy
        # auto weighs the prompt against context windows
        if _asks_auto(request.model, policy, state.catalog.auto_names):
            await self.prompt.prefetch()
        principal = self.ctx.principal
        plan = state.router.plan(request.model, request, policy, request.sent_params, self.prompt,
                                 permit=principal.policy.model_permit(),
                                 priced_only=state.accounts is not None and pays_with_credits(principal))
        keep_serving(request, plan)
        first = plan.candidates[0]
        record.served_model, record.provider = first.model.id, first.deployment.provider
        record.deployment, record.pricing = first.deployment.id, first.model.price_of(first.deployment)
        if state.limiter is not None:
            decision = await admit(state.limiter, self.ctx.principal, request.user, state.settings.limit_defaults,
                                   self.prompt.prefetch, request.output_limit, first.model.max_output_tokens)
            if decision is not None:
                self.ctx.headers.update(decision.headers)
                self.ctx.limits_taken = True
                record.limit_ticket = decision.ticket
        if state.accounts is not None:
            if not state.accounts.ledger.accepting:  # never serve what could not be billed
                raise ServiceUnavailable("The usage ledger cannot keep up (its database is failing); retry shortly.",
                                         retry_after=5)
            record.reservation = await reserve_max_cost(state.accounts.credits, self.ctx.principal, request,
                                                        _priced_routes(request, plan))
        self.attempts = Attempts(plan, policy, state.router.health, record, state.budget, self.ctx.trace)
        return self.attempts

    def attempts_header(self) -> None:
        if self.record.attempts:
            self.ctx.headers["X-ParrotRouter-Attempts"] = attempts_header(self.record)

    def failed(self, err: ParrotError) -> ParrotError:
        """The error the client is told, recorded."""
        self.attempts_header()
        client_err = err.to_client_error() if isinstance(err, UpstreamFailure) else err
        self.record.status, self.record.error_code = client_err.status, client_err.code
        return client_err

    def cancelled(self, texts: list[str]) -> None:
        """Cut while waiting for the upstream: once it had the prompt (and maybe answered), it
        bills that, so do we."""
        record = self.record
        if record.ended_by is not None:
            return
        _ended(self.state, record, None)
        if self.attempts is not None and self.attempts.calls and not record.usage_reported:
            self.defer_count(record.served_model or self.request.model, texts)

    def defer_count(self, model: str, texts: list[str]) -> None:
        self.record.deferred_count = _deferred_count(self.request, model, texts)
        self.record.deferred_size = self.request.body_size + _size(texts)

    def keep_answer(self, answer: Callable[[], str]) -> None:
        """Store the answer with the record when the request asked and the operator allows it
        (`record.content` is None otherwise: callers test it first, so most requests pay nothing)."""
        logging, content = self.ctx.logging, self.record.content
        if logging is not None and logging.keep_response and content is not None:
            # cut as the request is (the store cuts to bytes and flags it): held until written
            max_bytes = self.state.settings.content_max_bytes
            content.keep_response(answer()[:max_bytes + 1])

    def record_usage(self) -> None:
        if self.recorded:
            return
        self.recorded = True
        record, state = self.record, self.state
        record.settle()
        if record.limit_ticket is not None and state.limiter is not None:
            _reconcile_later(state, record)
        if state.observers:
            state.observers.finished(record, self.ctx)
        state.usage.record(record)


async def answer(state: AppState, ctx: RequestContext, request: GenerationRequest,
                 policy: RoutingPolicy) -> JSONObject:
    """Serve a non-streaming request: the OpenAI-shaped answer, normalised, with its usage."""
    work = _Work(state, ctx, request, policy)
    record = work.record
    texts: list[str] = []  # the answer's texts, once in hand
    try:
        attempts = await work.prepare()
        result, cand = await attempts.run(request.run)
        work.attempts_header()
        body: dict[str, Any] = result
        normalize_completion(body, id=record.id, created=int(record.created_at), model=cand.model.id,
                             provider=cand.deployment.provider, object_type=request.shape.object_type)
        record.observe_usage(body.get("usage"))
        choices = body["choices"]
        record.finish_reason = choices[0]["finish_reason"] if choices else None
        if not record.usage_reported:
            texts = [choice_text(c) for c in choices]
            record.prompt_tokens, record.completion_tokens = await _count_now(
                _deferred_count(request, cand.model.id, texts), request.body_size + _size(texts), cand.model.id)
        # the cost is known now (reported or counted): priced once, for the answer and the ledger
        usage = body.get("usage")
        if usage is None:
            body["usage"] = record.usage_payload(request.usage_accounting)
        else:
            record.report(usage, request.usage_accounting)
        if record.content is not None:
            work.keep_answer(lambda: orjson.dumps(body).decode())
        out: JSONObject = body
        return out
    except ParrotError as err:
        raise work.failed(err) from None
    except asyncio.CancelledError:
        work.cancelled(texts)
        raise
    finally:
        work.record_usage()


@dataclasses.dataclass(frozen=True, slots=True)
class Frames:
    """Chunks to send, in one write."""

    chunks: Chunks


@dataclasses.dataclass(frozen=True, slots=True)
class Done:
    """The stream's end: the usage chunk to send first, if the client asked for one."""

    usage: JSONObject | None


@dataclasses.dataclass(frozen=True, slots=True)
class Failed:
    """The stream failed after it started: it ends with this error frame, never [DONE]."""

    frame: JSONObject


StreamEvent = Frames | Done | Failed


async def open_stream(state: AppState, ctx: RequestContext, request: GenerationRequest,
                      policy: RoutingPolicy) -> Stream:
    """Open the stream of the first deployment that produces content (earlier failures fail over
    silently). Errors before that are raised, as for `answer`."""
    work = _Work(state, ctx, request, policy)
    record = work.record

    async def attempt(cand: Candidate) -> tuple[list[Chunks], AsyncIterator[Chunks]]:
        batches = request.run_stream(cand).__aiter__()
        first_token = state.catalog.providers[cand.deployment.provider].timeouts.first_token
        opened = await open_upstream_stream(batches, first_token)
        record.first_token()
        return opened

    try:
        attempts = await work.prepare()
        (held, batches), candidate = await attempts.run(attempt)
        work.attempts_header()
    except ParrotError as err:
        client_err = work.failed(err)
        work.record_usage()
        raise client_err from None
    except asyncio.CancelledError:
        work.cancelled([])
        work.record_usage()
        raise
    except BaseException:
        work.record_usage()
        raise
    return Stream(work, candidate, held, batches)


class Stream:
    """A stream committed to its deployment. The API relays `events()`, then calls `finish()` in
    its `finally`: however the stream ended — the client hung up, the upstream failed, the server
    shut down — the request is billed for its prompt and every token relayed so far (counted with
    the model family's tokenizer when the upstream reported no usage), and the record says who
    ended it."""

    def __init__(self, work: _Work[GenerationRequest], candidate: Candidate, held: list[Chunks],
                 batches: AsyncIterator[Chunks]) -> None:
        self.work = work
        self.candidate = candidate
        self.relay = Relay(work.request.shape, candidate.model.id, candidate.deployment.provider, work.record)
        self._held = held
        self._batches = batches
        self._ended = False  # reached its end (Done or Failed)
        self._events = self._run()

    def events(self) -> AsyncIterator[StreamEvent]:
        """The stream's events, to relay in order; the last is `Done` or `Failed`."""
        return self._events

    async def _run(self) -> AsyncGenerator[StreamEvent, None]:
        relay, record, work = self.relay, self.work.record, self.work
        try:
            for batch in self._held:
                if chunks := relay.chunks(batch):
                    yield Frames(chunks)
            async for batch in self._batches:
                if chunks := relay.chunks(batch):
                    yield Frames(chunks)
        except ParrotError as err:
            record.ended_by = "upstream"
            self._ended = True
            yield Failed(relay.error_frame(err))
            return
        except Exception:  # an upstream chunk the relay could not handle: end the stream cleanly
            log.exception("relaying a stream of %s failed", self.candidate.deployment.id)
            record.ended_by = "upstream"
            self._ended = True
            yield Failed(relay.error_frame(malformed("stream chunk")))
            return
        model = self.candidate.model.id
        if not record.usage_reported:
            if work.request.include_usage:
                record.prompt_tokens, record.completion_tokens = await _count_now(
                    _deferred_count(work.request, model, relay.texts),
                    work.request.body_size + _size(relay.texts), model)
            else:
                work.defer_count(model, relay.texts)
        self._ended = True
        yield Done(relay.usage_chunk(work.request.usage_accounting) if work.request.include_usage else None)

    def cost(self) -> orjson.Fragment:
        """The request's cost so far, as answers report it (`usage.cost`): for inbound APIs that
        relay an upstream's own usage events (native streams)."""
        return self.work.record.answer_cost()

    def shutdown_frame(self) -> JSONObject:
        """The frame telling the client the server cut the stream (it is recorded as a shutdown)."""
        return self.relay.error_frame(ServiceUnavailable("The server is shutting down; the stream was cut. "
                                                         "Retry the request."))

    async def finish(self) -> None:
        """Close the upstream and record the request's usage (the API's `finally`)."""
        work, record = self.work, self.work.record
        try:
            await self._events.aclose()
            if not self._ended:
                _ended(work.state, record, "client")
            if record.ended_by is not None:  # cut short: at least what was relayed, whatever was reported
                record.deferred_count = _cut_count(record, _deferred_count(work.request, self.candidate.model.id,
                                                                           self.relay.texts))
                record.deferred_size = work.request.body_size + _size(self.relay.texts)
            await close_quietly(self._batches)
        finally:
            if record.content is not None:
                work.keep_answer(lambda: "".join(self.relay.texts))  # what was relayed
            work.record_usage()


def _label(record: UsageRecord, logging: LogRequest, budget: ContentBudget | None) -> None:
    """The logging headers' labels on the record, and the content to store (when asked and allowed)."""
    record.log_level, record.session_id, record.log_metadata = logging.level, logging.session_id, logging.metadata
    if logging.user_id is not None:
        record.user = logging.user_id
    if logging.request_body is not None or logging.keep_response:
        record.content = LoggedContent(budget=budget)
        if logging.request_body is not None:
            record.content.keep_request(logging.request_body)


def _content_budget(state: AppState) -> ContentBudget | None:
    """This process's budget of content waiting to be written (None: no content store)."""
    content = state.accounts.ledger.content if state.accounts is not None else None
    return content.budget if content is not None else None


def _priced_routes(request: Served, plan: Plan) -> list[PricedRoute]:
    """The plan's prices (a caller that pays with credits has no unpriced candidate: the router
    removed them; for the others an unknown price reserves nothing and is recorded as cost 0)."""
    routes = []
    for cand in plan.candidates:
        pricing = cand.model.price_of(cand.deployment)
        if pricing is not None:
            cap = output_cap(request.output_limit, cand.model.max_output_tokens, cand.model.context_length)
            routes.append(PricedRoute(pricing, cap, cand.deployment.upstream_model))
    return routes


def _asks_auto(model: str, policy: RoutingPolicy, auto_names: frozenset[str] = frozenset({AUTO})) -> bool:
    if model in auto_names:
        return True
    if policy is DEFAULT_POLICY:
        return False
    asked = (policy.primary_model, *policy.fallback_models, *(fb.model for fb in policy.conditional_fallbacks))
    return not auto_names.isdisjoint(asked)


def _ended(state: AppState, record: UsageRecord, by: str | None) -> None:
    """Who cut a request short: shutdown (the server is stopping), else the client, or `by`."""
    if state.stopping:
        record.status, record.error_code, record.ended_by = 503, "shutdown", "shutdown"
    elif by is None or by == "client":
        record.status, record.error_code, record.ended_by = STATUS_CLIENT_CLOSED, "client_closed", "client"
    else:
        record.ended_by = by


def _cut_count(record: UsageRecord, count: Callable[[], tuple[int, int]]) -> Callable[[], tuple[int, int]]:
    reported = (record.prompt_tokens, record.completion_tokens) if record.usage_reported else (0, 0)

    def at_least_relayed() -> tuple[int, int]:
        prompt, completion = count()
        return max(prompt, reported[0]), max(completion, reported[1])

    return at_least_relayed


def _size(texts: list[str]) -> int:
    return sum(map(len, texts))


async def _count_now(count: Callable[[], tuple[int, int]], size: int, model: str) -> tuple[int, int]:
    """Counted in a worker thread when large, or when the model's tokenizer is not loaded yet."""
    return await asyncio.to_thread(count) if size >= OFF_LOOP_COUNT or not encoding_ready(model) else count()


def _deferred_count(request: Served, model: str, texts: list[str]) -> Callable[[], tuple[int, int]]:
    """The upstream reported no usage: count with the model family's tokenizer, when needed."""

    def count() -> tuple[int, int]:
        return request.count_prompt(model), count_text("".join(texts), model)

    return count


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
