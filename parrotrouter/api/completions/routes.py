from __future__ import annotations

from typing import Any

from aiohttp import web

from ...accounting.bounds import completion_billable, completion_cheap_billable
from ...errors import InvalidRequest
from ...protocol.completions import CompletionRequest, check_prompt
from ...protocol.validation import convert
from ...providers.base import CompletionCall, Provider
from ...routing.router import Candidate
from ...tokens import count_text
from ..generation import Endpoint, serve
from ..request import app_state, authenticate, read_json


def _make_call(request: CompletionRequest, raw: dict[str, Any], candidate: Candidate) -> CompletionCall:
    return CompletionCall(request, raw, candidate.model, candidate.deployment)


def _run(provider: Provider, call: CompletionCall) -> Any:
    return provider.completion(call)


def _run_stream(provider: Provider, call: CompletionCall) -> Any:
    return provider.completion_stream(call)


def _count_prompt(request: CompletionRequest, model: str) -> int:
    prompt = request.prompt
    if isinstance(prompt, str):
        return count_text(prompt, model)
    if prompt and isinstance(prompt[0], int):
        return len(prompt)
    return sum(count_text(p, model) if isinstance(p, str) else len(p) for p in prompt)


COMPLETIONS = Endpoint(name="completions", id_prefix="cmpl-", object_type="text_completion",
                       chunk_type="text_completion", make_call=_make_call, run=_run,
                       run_stream=_run_stream, count_prompt=_count_prompt, billable=completion_billable,
                       cheap_billable=completion_cheap_billable)


def check_semantics(request: CompletionRequest) -> None:
    if request.stream_options is not None and not request.stream:
        raise InvalidRequest("'stream_options' is only allowed when 'stream' is true.", param="stream_options")
    if request.best_of is not None:
        if request.stream:
            raise InvalidRequest("'best_of' cannot be used with 'stream'.", param="best_of")
        if request.best_of < (request.n or 1):
            raise InvalidRequest("'best_of' must be greater than or equal to 'n'.", param="best_of")
    check_prompt(request.prompt)


async def create_completion(http: web.Request) -> web.StreamResponse:
    state = app_state(http)
    principal = authenticate(http, write=True)
    raw = await read_json(http)
    request = convert(raw, CompletionRequest)
    check_semantics(request)
    if principal.policy.features is not None:
        principal.policy.check_features(["completions", "streaming"] if request.stream else ["completions"])
    return await serve(state, http, COMPLETIONS, principal, request, raw)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/completions", create_completion)
