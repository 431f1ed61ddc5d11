"""`POST /v1/messages/count_tokens`: the request's input tokens. An Anthropic deployment counts
with Anthropic's own endpoint; any other model (or an Anthropic-compatible upstream that has no
count_tokens endpoint) with the gateway's tokenizer, an estimate the answer marks with
`x-parrotrouter-estimate: true`. Keys, model permissions and request rate
limits apply as for a generation; nothing is generated, so nothing is billed, but a key whose
credits are spent gets a 402 rather than a call on the operator's Anthropic quota."""

from __future__ import annotations

import asyncio
from typing import Protocol, runtime_checkable

from aiohttp import web

from ...accounting.reserve import require_credit
from ...errors import FailureKind, UpstreamFailure
from ...protocol.validation import convert
from ...providers.base import ChatCall, NativeCall
from ...ratelimit.rules import limits_for
from ...routing.policy import parse_policy
from ...serving.request import GenerationRequest
from ...serving.served import keep_serving
from ...tokens import encoding_ready
from ..json import json_response
from ..request import app_state, authenticated, read_json_sized
from .decode import check_body, to_chat
from .protocol import DIALECT, CountTokensRequest, native_headers

ESTIMATE_HEADER = "x-parrotrouter-estimate"
OFF_LOOP_BYTES = 256 * 1024  # count larger bodies in a worker thread (tiktoken releases the GIL)


@runtime_checkable
class NativeCounter(Protocol):
    async def count_tokens(self, call: NativeCall) -> int: ...


async def count_tokens(http: web.Request) -> web.StreamResponse:
    ctx = authenticated(http, write=True)
    raw, size = await read_json_sized(http)
    check_body(raw)
    translated = to_chat(convert(raw, CountTokensRequest))
    request = GenerationRequest.decode(translated.canonical, translated.raw, size, endpoint="messages",
                                       routing_body=raw)
    principal = ctx.principal
    principal.policy.check_features(request.features())
    state = app_state(http)
    plan = state.router.plan(request.model, request, parse_policy(http.headers, request.routing),
                             request.sent_params, lambda: request.count_prompt(request.model),
                             permit=principal.policy.model_permit())
    keep_serving(request, plan)
    if state.limiter is not None:  # one request off the request limits; no tokens
        decision = await state.limiter.admit(limits_for(principal, None, state.settings.limit_defaults), 0)
        ctx.headers.update(decision.headers)
        ctx.limits_taken = True
    first = plan.candidates[0]
    provider = first.provider
    if DIALECT in provider.native_dialects and isinstance(provider, NativeCounter):
        if state.accounts is not None:  # Anthropic's count is free, its quota is not: not for a spent key
            await require_credit(state.accounts.credits, principal)
        chat = ChatCall(translated.canonical, translated.raw, first.model, first.deployment)
        try:
            counted = await provider.count_tokens(NativeCall(DIALECT, raw, chat, native_headers(http.headers)))
            return json_response({"input_tokens": counted})
        except UpstreamFailure as err:
            if err.kind is not FailureKind.NOT_FOUND:
                raise
            # an Anthropic-compatible upstream without count_tokens: estimate, and say so
    return await _estimate(request, first.model.id, size)


async def _estimate(request: GenerationRequest, model: str, size: int) -> web.Response:
    if size >= OFF_LOOP_BYTES or not encoding_ready(model):
        estimate = await asyncio.to_thread(request.count_prompt, model)
    else:
        estimate = request.count_prompt(model)
    response = json_response({"input_tokens": estimate})
    response.headers[ESTIMATE_HEADER] = "true"
    return response
