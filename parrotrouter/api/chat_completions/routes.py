from __future__ import annotations

from typing import Any

from aiohttp import web

from ...accounting.bounds import chat_billable, chat_cheap_billable
from ...errors import InvalidRequest
from ...protocol.chat import ChatCompletionRequest
from ...protocol.validation import convert
from ...providers.base import ChatCall, Provider
from ...routing.router import Candidate
from ...tokens import estimate_chat_prompt_tokens
from ..generation import Endpoint, serve
from ..request import app_state, authenticate, read_json


def _make_call(request: ChatCompletionRequest, raw: dict[str, Any], candidate: Candidate) -> ChatCall:
    return ChatCall(request, raw, candidate.model, candidate.deployment)


def _run(provider: Provider, call: ChatCall) -> Any:
    return provider.chat(call)


def _run_stream(provider: Provider, call: ChatCall) -> Any:
    return provider.chat_stream(call)


def _count_prompt(request: ChatCompletionRequest, model: str) -> int:
    return estimate_chat_prompt_tokens(request.messages, request.tools, model)


CHAT = Endpoint(name="chat.completions", id_prefix="chatcmpl-", object_type="chat.completion",
                chunk_type="chat.completion.chunk", make_call=_make_call, run=_run, run_stream=_run_stream,
                count_prompt=_count_prompt, billable=chat_billable, cheap_billable=chat_cheap_billable)


def check_semantics(request: ChatCompletionRequest) -> None:
    """Rules between fields that types alone cannot state (as OpenAI enforces them)."""
    if request.stream_options is not None and not request.stream:
        raise InvalidRequest("'stream_options' is only allowed when 'stream' is true.", param="stream_options")
    if request.top_logprobs is not None and not request.logprobs:
        raise InvalidRequest("'top_logprobs' requires 'logprobs' to be true.", param="top_logprobs")
    if request.tool_choice is not None and request.tool_choice != "none" and not request.tools:
        raise InvalidRequest("'tool_choice' is only allowed when 'tools' are given.", param="tool_choice")
    if request.parallel_tool_calls is not None and not request.tools:
        raise InvalidRequest("'parallel_tool_calls' is only allowed when 'tools' are given.",
                             param="parallel_tool_calls")


async def create_chat_completion(http: web.Request) -> web.StreamResponse:
    state = app_state(http)
    principal = authenticate(http, write=True)
    raw = await read_json(http)
    request = convert(raw, ChatCompletionRequest)
    check_semantics(request)
    if principal.policy.features is not None:
        principal.policy.check_features(request.features())
    return await serve(state, http, CHAT, principal, request, raw)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", create_chat_completion)
