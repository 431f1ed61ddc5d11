"""A fake Azure OpenAI resource speaking the documented wire format (JSON and SSE).

It checks what Azure checks, answering as Azure answers: the `api-key` header or an Entra ID
`Authorization: Bearer` token (401 `{"error": {"code": "401", ...}}`), the `api-version` query of
the deployments API (missing: 404 "Resource not found"; unknown: 400 "API version not supported";
the v1 API takes none, `v1` or `preview`), the deployment (404 `DeploymentNotFound`). The
deployment name (the body's `model` on the v1 API) picks the scenario. Answers carry Azure's
content-filter annotations (`prompt_filter_results`, `content_filter_results`) and streams its
annotation-only chunks, shaped after the examples in Azure's content-filtering documentation and
REST reference (api-version 2024-10-21). Streams are generated from the same answer as the JSON,
so stream and non-stream can be compared."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .threaded import ThreadedServer

API_VERSIONS = frozenset({"2024-02-01", "2024-06-01", "2024-10-21", "2025-01-01-preview", "2025-04-01-preview"})
V1_VERSIONS = frozenset({"v1", "preview"})
CREATED = 1686676106

SAFE = {"hate": {"filtered": False, "severity": "safe"}, "self_harm": {"filtered": False, "severity": "safe"},
        "sexual": {"filtered": False, "severity": "safe"}, "violence": {"filtered": False, "severity": "safe"}}
PROMPT_FILTER = [{"prompt_index": 0, "content_filter_results": {
    **SAFE, "jailbreak": {"filtered": False, "detected": False}}}]
CODE_CITATION = {**SAFE, "protected_material_code": {
    "filtered": False, "detected": True,
    "citation": {"URL": "https://github.com/username/repository-name/path/to/file-example.txt",
                 "license": "EXAMPLE-LICENSE"}}}


def _usage(prompt: int = 33, completion: int = 12, cached: int = 0) -> dict[str, Any]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}


WEATHER_CALL = {"id": "call_XLQdzmHQ6Ue0A1HdiwQkqKrR", "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'}}
SCENARIOS: dict[str, dict[str, Any]] = {
    "gpt-4o": {"content": "Ahoy matey! Keep yer parrot's cage clean, arrr!", "finish": "stop",
               "usage": _usage(33, 12, cached=0)},
    "gpt-4o-cached": {"content": "From the cache.", "finish": "stop", "usage": _usage(2048, 4, cached=1920)},
    "gpt-4o-tools": {"content": None, "tool_calls": [WEATHER_CALL], "finish": "tool_calls", "usage": _usage(80, 20)},
    "gpt-4o-citation": {"content": "def parrot(): return 'squawk'", "finish": "stop", "usage": _usage(15, 9),
                        "filter": CODE_CITATION},
    # An answer the filter cut: what was sent before it stays (the docs' "blocked" stream sample).
    "filtered-output": {"content": "Hey Jude, don't make it bad", "finish": "content_filter", "usage": _usage(17, 30),
                        "filter": {"protected_material_text": {"filtered": True, "detected": True}}},
}
SCENARIOS["pirate-chat"] = SCENARIOS["gpt-4o"]  # a deployment named as its owner chose
FILTERED_PROMPT = {"error": {
    "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. "
               "Please modify your prompt and retry. To learn more about our content filtering policies please "
               "read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766",
    "type": None, "param": "prompt", "code": "content_filter", "status": 400,
    "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {
        "hate": {"filtered": False, "severity": "safe"}, "jailbreak": {"filtered": True, "detected": True},
        "self_harm": {"filtered": False, "severity": "safe"}, "sexual": {"filtered": False, "severity": "safe"},
        "violence": {"filtered": True, "severity": "medium"}}}}}
ERRORS: dict[str, tuple[int, dict[str, Any], dict[str, str]]] = {
    "filtered-prompt": (400, FILTERED_PROMPT, {}),
    "rate-limited": (429, {"error": {"code": "429", "message": (
        "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded "
        "token rate limit of your current OpenAI S0 pricing tier. Please retry after 7 seconds.")}},
        {"Retry-After": "7", "retry-after-ms": "7000", "x-ratelimit-remaining-requests": "0"}),
    "context": (400, {"error": {"message": "This model's maximum context length is 128000 tokens. However, your "
                                "messages resulted in 130527 tokens. Please reduce the length of the messages.",
                                "type": "invalid_request_error", "param": "messages",
                                "code": "context_length_exceeded"}}, {}),
    "server-error": (500, {"error": {"code": "InternalServerError", "message": (
        "The service is temporarily unable to process your request. Please try again later.")}}, {}),
    "busy": (503, {"error": {"code": "ServiceUnavailable", "message": "The service is temporarily unavailable."}},
             {}),
}
UNAUTHORIZED_KEY = {"error": {"code": "401", "message": (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for "
    "an active subscription and use a correct regional API endpoint for your resource.")}}
UNAUTHORIZED_TOKEN = {"error": {"code": "401", "message": (
    "Unauthorized. Access token is missing, invalid, audience is incorrect (https://cognitiveservices.azure.com), "
    "or have expired.")}}
NOT_FOUND = {"error": {"code": "404", "message": "Resource not found"}}
# Versions before 2024-09-01-preview do not know stream_options.
UNRECOGNIZED_STREAM_OPTIONS = {"error": {"message": "Unrecognized request argument supplied: stream_options",
                                         "type": "invalid_request_error", "param": None, "code": None}}
BAD_VERSION = {"error": {"code": "BadRequest", "message": "API version not supported"}}
NO_DEPLOYMENT = {"error": {"code": "DeploymentNotFound", "message": (
    "The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, "
    "please wait a moment and try again.")}}
# What the completions deployment answers (a legacy instruct model).
INSTRUCT = "gpt-35-turbo-instruct"
INSTRUCT_TEXT = "\n\nWhat do you call a mango who's in charge?\n\nThe head mango."


def chat_completion(deployment: str) -> dict[str, Any]:
    spec = SCENARIOS[deployment]
    message: dict[str, Any] = {"role": "assistant", "content": spec["content"], "refusal": None}
    if spec.get("tool_calls"):
        message["tool_calls"] = spec["tool_calls"]
    choice = {"index": 0, "finish_reason": spec["finish"], "logprobs": None, "message": message,
              "content_filter_results": spec.get("filter", SAFE)}
    return {"id": "chatcmpl-7R1nGnsXO8n4oi9UPz2f3UHdgAYMn", "object": "chat.completion", "created": CREATED,
            "model": "gpt-4o-2024-08-06", "system_fingerprint": "fp_04751d0b65", "choices": [choice],
            "prompt_filter_results": PROMPT_FILTER, "usage": spec["usage"]}


def _data(obj: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(obj)}\n\n".encode()


def _pieces(text: str, size: int = 9) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


def chat_frames(deployment: str, include_usage: bool, error_midway: bool = False) -> list[bytes]:
    answer = chat_completion(deployment)
    base = {"id": answer["id"], "object": "chat.completion.chunk", "created": CREATED, "model": answer["model"],
            "system_fingerprint": answer["system_fingerprint"]}
    blank = {"id": "", "object": "", "created": 0, "model": ""}  # Azure's annotation-only chunks

    def chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> bytes:
        choice: dict[str, Any] = {"index": 0, "finish_reason": finish, "logprobs": None, **extra}
        if delta is not None:
            choice["delta"] = delta
        return _data({**base, "choices": [choice], "usage": None})

    choice = answer["choices"][0]
    message, filtered = choice["message"], choice["finish_reason"] == "content_filter"
    out = [_data({**blank, "prompt_filter_results": PROMPT_FILTER, "choices": [], "usage": None}),
           chunk({"role": "assistant", "content": "", "refusal": None}, content_filter_results={})]
    for i, piece in enumerate(_pieces(message["content"] or "")):
        out.append(chunk({"content": piece}, content_filter_results=SAFE))
        if error_midway:
            out.append(_data({"error": {"message": "The server had an error while processing your request.",
                                        "type": "server_error", "param": None, "code": None}}))
            return out
        if i == 1:  # the asynchronous filter annotates text already sent
            out.append(_data({**blank, "choices": [{"index": 0, "finish_reason": None, "content_filter_results": SAFE,
                                                    "content_filter_offsets": {"check_offset": 18, "start_offset": 0,
                                                                               "end_offset": 18}}], "usage": None}))
    for i, call in enumerate(message.get("tool_calls") or ()):
        out.append(chunk({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                          "function": {"name": call["function"]["name"], "arguments": ""}}]}))
        for piece in _pieces(call["function"]["arguments"], 7):
            out.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}))
    if filtered:  # the docs' sample: the stopping chunk is an annotation chunk, without a delta
        out.append(_data({**blank, "choices": [{"index": 0, "finish_reason": "content_filter",
                                                "content_filter_results": choice["content_filter_results"],
                                                "content_filter_offsets": {"check_offset": 65, "start_offset": 65,
                                                                           "end_offset": 1056}}], "usage": None}))
    else:
        out.append(chunk({}, choice["finish_reason"], content_filter_results=choice["content_filter_results"]))
    if include_usage:
        out.append(_data({**base, "choices": [], "usage": answer["usage"]}))
    out.append(b"data: [DONE]\n\n")
    return out


def text_completion(prompt_count: int) -> dict[str, Any]:
    choice = {"text": INSTRUCT_TEXT, "index": 0, "finish_reason": "stop", "logprobs": None,
              "content_filter_results": SAFE}
    return {"id": "cmpl-7QmVI15qgYVllxK0FtxVGG6ywfzaq", "object": "text_completion", "created": CREATED,
            "model": INSTRUCT, "choices": [choice],
            "prompt_filter_results": [{**PROMPT_FILTER[0], "prompt_index": i} for i in range(prompt_count)],
            "usage": {"completion_tokens": 20, "prompt_tokens": 6, "total_tokens": 26}}


def completion_frames(include_usage: bool) -> list[bytes]:
    answer = text_completion(1)
    base = {k: answer[k] for k in ("id", "object", "created", "model")}
    out = [_data({"id": "", "object": "", "created": 0, "model": "", "prompt_filter_results": PROMPT_FILTER,
                  "choices": []})]
    for piece in _pieces(INSTRUCT_TEXT, 8):
        out.append(_data({**base, "choices": [{"text": piece, "index": 0, "finish_reason": None, "logprobs": None,
                                               "content_filter_results": SAFE}]}))
    out.append(_data({**base, "choices": [{"text": "", "index": 0, "finish_reason": "stop", "logprobs": None}]}))
    if include_usage:
        out.append(_data({**base, "choices": [], "usage": answer["usage"]}))
    out.append(b"data: [DONE]\n\n")
    return out


class FakeAzure(ThreadedServer):
    def __init__(self, api_key: str = "azure-key", ad_token: str = "entra-token") -> None:
        super().__init__()
        self.api_key = api_key
        self.ad_token = ad_token

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/openai/deployments/{deployment}/{operation:chat/completions|completions}", self.serve)
        app.router.add_post("/openai/v1/{operation:chat/completions|completions}", self.serve)
        app.router.add_post("/openai/v1/responses", self.responses)
        app.router.add_post("/openai/responses", self.responses)

    async def responses(self, request: web.Request) -> web.StreamResponse:
        """The Responses API (v1 API, or the resource's with a preview api-version): the deployment
        is the body's `model`; answered as OpenAI answers (tests/fakes/openai_responses.py)."""
        from .openai_responses import serve as serve_responses

        body = await self.record(request)
        refusal = self._refusal(request, request.path.startswith("/openai/v1/"))
        if refusal is not None:
            return refusal
        if body.get("model") not in SCENARIOS:
            return web.json_response(NO_DEPLOYMENT, status=404)
        return await serve_responses(request, body)

    def _refusal(self, request: web.Request, v1: bool) -> web.Response | None:
        """Azure's own checks, in its order: credentials, then the api-version."""
        bearer = request.headers.get("Authorization", "")
        if "api-key" in request.headers:
            if request.headers["api-key"] != self.api_key:
                return web.json_response(UNAUTHORIZED_KEY, status=401)
        elif bearer.startswith("Bearer "):
            if bearer.removeprefix("Bearer ") != self.ad_token:
                return web.json_response(UNAUTHORIZED_TOKEN, status=401)
        else:
            return web.json_response(UNAUTHORIZED_KEY, status=401)
        version = request.query.get("api-version")
        if v1:
            if version is not None and version not in V1_VERSIONS:
                return web.json_response(BAD_VERSION, status=400)
        elif version is None:
            return web.json_response(NOT_FOUND, status=404)
        elif version not in API_VERSIONS:
            return web.json_response(BAD_VERSION, status=400)
        return None

    async def serve(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        v1 = "deployment" not in request.match_info
        refusal = self._refusal(request, v1)
        if refusal is not None:
            return refusal
        deployment = str(body.get("model")) if v1 else request.match_info["deployment"]
        chat = request.match_info["operation"] == "chat/completions"
        if deployment in ERRORS:
            status, error, headers = ERRORS[deployment]
            return web.json_response(error, status=status, headers=headers)
        known = (deployment in SCENARIOS or deployment == "midstream") if chat else deployment == INSTRUCT
        if not known:
            return web.json_response(NO_DEPLOYMENT, status=404)
        version = request.query.get("api-version")
        if "stream_options" in body and version is not None and version[:10] < "2024-09-01":
            return web.json_response(UNRECOGNIZED_STREAM_OPTIONS, status=400)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if not body.get("stream"):
            if chat:
                return web.json_response(chat_completion(deployment))
            prompt = body.get("prompt")
            return web.json_response(text_completion(len(prompt) if isinstance(prompt, list) else 1))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if not chat:
            frames = completion_frames(include_usage)
        elif deployment == "midstream":
            frames = chat_frames("gpt-4o", include_usage, error_midway=True)
        else:
            frames = chat_frames(deployment, include_usage)
        for frame in frames:
            await resp.write(frame)
        return resp
