"""Google Gemini, Generative Language API (`type: gemini`): generateContent and
streamGenerateContent?alt=sse, to and from OpenAI chat (embeddings: `gemini_embed.py`).

Requests: `contents` with user/model roles and parts; `systemInstruction`; `generationConfig`
(temperature, topP, maxOutputTokens, stopSequences, candidateCount from n, responseMimeType and
responseSchema from response_format, seed, penalties, thinking); `tools.functionDeclarations`
with schemas cut down to what Gemini accepts; `toolConfig` from tool_choice; images as
inlineData (data URLs) or fileData (URLs); tool calls as functionCall parts and tool messages
as functionResponse parts, matched by name through the call id. Gemini has no call ids: ours are
derived from the response id and the call's position. Thought signatures are kept (in the tool
call's `extra_content.google.thought_signature`, and by call id on the adapter) and sent back.
"""

from __future__ import annotations

import collections
import hashlib
import mimetypes
from collections.abc import Mapping
from typing import Any

import orjson

from ..catalog import ProviderSpec
from ..errors import FailureKind, InvalidRequest, UpstreamFailure, echo
from ..protocol.chat import (
    AssistantMessage,
    ChatCompletionRequest,
    DeveloperMessage,
    FunctionMessage,
    FunctionTool,
    ImagePart,
    JsonObjectFormat,
    JsonSchemaFormat,
    NamedToolChoice,
    SystemMessage,
    TextPart,
    ToolMessage,
    UserMessage,
    message_text,
)
from ..upstream.client import ServerSentEvent, UpstreamRequest
from .base import ChatCall, CompletionCall, json_object, json_or_none, malformed, upstream_failure
from .gemini_embed import GeminiEmbeddings
from .gemini_schema import gemini_schema
from .http import HttpProvider
from .presets import Preset
from .registry import ProviderType
from .translate import data_url, dump_arguments, parse_arguments, thinking_budget

FILTERED = {"SAFETY", "RECITATION", "PROHIBITED_CONTENT", "SPII", "BLOCKLIST", "IMAGE_SAFETY", "LANGUAGE"}
STATUS_KINDS = {"INVALID_ARGUMENT": FailureKind.BAD_REQUEST, "FAILED_PRECONDITION": FailureKind.BAD_REQUEST,
                "OUT_OF_RANGE": FailureKind.BAD_REQUEST, "UNAUTHENTICATED": FailureKind.AUTH,
                "PERMISSION_DENIED": FailureKind.AUTH, "NOT_FOUND": FailureKind.NOT_FOUND,
                "RESOURCE_EXHAUSTED": FailureKind.RATE_LIMIT, "UNAVAILABLE": FailureKind.MODEL_OVERLOADED,
                "INTERNAL": FailureKind.SERVER_ERROR, "DEADLINE_EXCEEDED": FailureKind.TIMEOUT}
SIGNATURES_KEPT = 10_000


def finish_of(reason: str | None, has_calls: bool) -> tuple[str, str | None]:
    if reason in FILTERED:
        return "content_filter", reason
    if reason == "MAX_TOKENS":
        return "length", reason
    return ("tool_calls" if has_calls else "stop"), reason


def usage_of(meta: Mapping[str, Any]) -> dict[str, Any]:
    prompt = meta.get("promptTokenCount") or 0
    thoughts = meta.get("thoughtsTokenCount") or 0
    completion = (meta.get("candidatesTokenCount") or 0) + thoughts
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": meta.get("cachedContentTokenCount") or 0},
            "completion_tokens_details": {"reasoning_tokens": thoughts}}


def call_id(response_id: str, candidate: int, position: int) -> str:
    digest = hashlib.sha256(f"{response_id}:{candidate}:{position}".encode()).hexdigest()
    return "call_" + digest[:24]


class GeminiTranslator:
    """Pure request translation; `signatures` are thought signatures kept by tool call id."""

    def __init__(self, signatures: Mapping[str, str]) -> None:
        self.signatures = signatures

    def _user_parts(self, content: Any) -> list[dict[str, Any]]:
        if isinstance(content, str):
            return [{"text": content}]
        parts: list[dict[str, Any]] = []
        for part in content:
            if isinstance(part, TextPart):
                parts.append({"text": part.text})
            elif isinstance(part, ImagePart):
                url = part.image_url.url
                inline = data_url(url)
                if inline is not None:
                    parts.append({"inlineData": {"mimeType": inline[0], "data": inline[1]}})
                else:
                    mime = mimetypes.guess_type(url.split("?", 1)[0])[0] or "image/jpeg"
                    parts.append({"fileData": {"mimeType": mime, "fileUri": url}})
            else:
                raise InvalidRequest("Gemini accepts text and image content parts here.", param="messages")
        return parts

    def _model_parts(self, m: AssistantMessage, i: int) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        text = message_text(m.content)
        if text:
            parts.append({"text": text})
        for call in m.tool_calls or ():
            fn = getattr(call, "function", None)
            if fn is None:
                raise InvalidRequest("Gemini supports function tool calls only.", param=f"messages[{i}].tool_calls")
            part: dict[str, Any] = {"functionCall": {"name": fn.name, "args": parse_arguments(fn.arguments,
                                                                                           f"messages[{i}]")}}
            extra = getattr(call, "extra_content", None) or {}
            signature = (extra.get("google") or {}).get("thought_signature") or self.signatures.get(call.id)
            if signature:
                part["thoughtSignature"] = signature
            parts.append(part)
        return parts

    def contents(self, request: ChatCompletionRequest) -> list[dict[str, Any]]:
        names: dict[str, str] = {}  # tool call id -> function name, for functionResponse parts
        contents: list[dict[str, Any]] = []
        for i, m in enumerate(request.messages):
            if isinstance(m, SystemMessage | DeveloperMessage):
                continue
            if isinstance(m, UserMessage):
                role, parts = "user", self._user_parts(m.content)
            elif isinstance(m, AssistantMessage):
                for call in m.tool_calls or ():
                    if getattr(call, "function", None) is not None:
                        names[call.id] = call.function.name  # type: ignore[union-attr]
                role, parts = "model", self._model_parts(m, i)
            elif isinstance(m, ToolMessage):
                name = names.get(m.tool_call_id)
                if name is None:
                    raise InvalidRequest(f"The tool message answers '{echo(m.tool_call_id)}', which no earlier "
                                         "assistant message called.", param=f"messages[{i}].tool_call_id")
                text = message_text(m.content)
                try:
                    result = orjson.loads(text)
                except orjson.JSONDecodeError:
                    result = text
                response = result if isinstance(result, dict) else {"result": result}
                role, parts = "user", [{"functionResponse": {"name": name, "response": response}}]
            else:
                assert isinstance(m, FunctionMessage)
                role, parts = "user", [{"functionResponse": {"name": m.name, "response": {"result": m.content}}}]
            if not parts:
                continue
            if contents and contents[-1]["role"] == role:
                contents[-1]["parts"].extend(parts)
            else:
                contents.append({"role": role, "parts": parts})
        if not contents:
            raise InvalidRequest("Gemini needs at least one user or assistant message besides system ones.",
                                 param="messages")
        return contents

    def body(self, request: ChatCompletionRequest, default_max_tokens: int | None) -> dict[str, Any]:
        if request.logprobs:
            raise InvalidRequest("'logprobs' is not supported by the provider 'gemini'.", param="logprobs")
        body: dict[str, Any] = {"contents": self.contents(request)}
        system = [{"text": message_text(m.content)} for m in request.messages
                  if isinstance(m, SystemMessage | DeveloperMessage)]
        if system:
            body["systemInstruction"] = {"parts": system}
        config: dict[str, Any] = {}
        for ours, theirs in (("temperature", "temperature"), ("top_p", "topP"), ("seed", "seed"),
                             ("presence_penalty", "presencePenalty"), ("frequency_penalty", "frequencyPenalty")):
            value = getattr(request, ours)
            if value is not None:
                config[theirs] = value
        limit = request.output_limit or default_max_tokens
        if limit:
            config["maxOutputTokens"] = limit
        if request.stop_list:
            config["stopSequences"] = request.stop_list
        if (request.n or 1) > 1:
            config["candidateCount"] = request.n
        fmt = request.response_format
        if isinstance(fmt, JsonSchemaFormat):
            config["responseMimeType"] = "application/json"
            config["responseSchema"] = gemini_schema(fmt.json_schema.schema or {"type": "object"}, "response_format")
        elif isinstance(fmt, JsonObjectFormat):
            config["responseMimeType"] = "application/json"
        budget = thinking_budget(request)
        if budget is not None:
            config["thinkingConfig"] = {"thinkingBudget": budget, "includeThoughts": True}
        if config:
            body["generationConfig"] = config
        self._tools(request, body)
        return body

    @staticmethod
    def _tools(request: ChatCompletionRequest, body: dict[str, Any]) -> None:
        if not request.tools:
            return
        declarations = []
        for i, tool in enumerate(request.tools):
            if not isinstance(tool, FunctionTool):
                raise InvalidRequest("Gemini supports function tools only.", param="tools")
            fn = tool.function
            decl: dict[str, Any] = {"name": fn.name}
            if fn.description:
                decl["description"] = fn.description
            if fn.parameters:
                decl["parameters"] = gemini_schema(fn.parameters, f"tools[{i}].function.parameters")
            declarations.append(decl)
        body["tools"] = [{"functionDeclarations": declarations}]
        choice = request.tool_choice
        if choice == "none":
            mode: dict[str, Any] = {"mode": "NONE"}
        elif choice == "required":
            mode = {"mode": "ANY"}
        elif isinstance(choice, NamedToolChoice):
            mode = {"mode": "ANY", "allowedFunctionNames": [choice.function.name]}
        elif choice in (None, "auto"):
            mode = {"mode": "AUTO"}
        else:
            raise InvalidRequest("This tool_choice is not supported by Gemini.", param="tool_choice")
        body["toolConfig"] = {"functionCallingConfig": mode}


class CandidateParts:
    """Turns one candidate's parts into OpenAI message pieces, numbering tool calls in order."""

    def __init__(self, response_id: str, index: int, signatures: dict[str, str]) -> None:
        self.response_id = response_id
        self.index = index
        self.calls = 0
        self.signatures = signatures

    def split(self, parts: list[dict[str, Any]]) -> tuple[str, str, list[dict[str, Any]]]:
        text, thoughts, calls = [], [], []
        for part in parts:
            if "functionCall" in part:
                fc = part["functionCall"] or {}
                cid = call_id(self.response_id, self.index, self.calls)
                self.calls += 1
                call: dict[str, Any] = {"id": cid, "type": "function",
                                        "function": {"name": fc.get("name") or "",
                                                     "arguments": dump_arguments(fc.get("args"))}}
                if part.get("thoughtSignature"):
                    call["extra_content"] = {"google": {"thought_signature": part["thoughtSignature"]}}
                    self.signatures[cid] = part["thoughtSignature"]
                calls.append(call)
            elif part.get("thought"):
                thoughts.append(part.get("text") or "")
            elif "text" in part:
                text.append(part["text"])
        return "".join(text), "".join(thoughts), calls


def from_gemini(resp: Mapping[str, Any], signatures: dict[str, str]) -> dict[str, Any]:
    response_id = str(resp.get("responseId") or "")
    choices = []
    candidates = resp.get("candidates") or []
    for pos, cand in enumerate(candidates):
        index = cand.get("index", pos)
        text, thoughts, calls = CandidateParts(response_id, index, signatures).split(
            (cand.get("content") or {}).get("parts") or [])
        finish, native = finish_of(cand.get("finishReason"), bool(calls))
        message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None, "refusal": None}
        if calls:
            message["tool_calls"] = calls
        if thoughts:
            message["reasoning"] = thoughts
        choices.append({"index": index, "message": message, "logprobs": None, "finish_reason": finish,
                        "native_finish_reason": native})
    if not candidates:  # the prompt itself was blocked
        reason = (resp.get("promptFeedback") or {}).get("blockReason") or "OTHER"
        choices.append({"index": 0, "message": {"role": "assistant", "content": None, "refusal": None},
                        "logprobs": None, "finish_reason": "content_filter", "native_finish_reason": reason})
    return {"object": "chat.completion", "choices": choices, "usage": usage_of(resp.get("usageMetadata") or {})}


class GeminiStream:
    """Each event is a partial GenerateContentResponse: text arrives in pieces, function calls
    whole; the stream is over when every candidate has a finish reason."""

    def __init__(self, provider: str, candidates: int, signatures: dict[str, str]) -> None:
        self.provider = provider
        self.expected = candidates
        self.signatures = signatures
        self.done = False
        self.parts: dict[int, CandidateParts] = {}
        self.started: set[int] = set()
        self.finished: set[int] = set()
        self.usage: dict[str, Any] = {}

    def feed(self, event: ServerSentEvent) -> list[dict[str, Any]]:
        resp = json_object(event.data, "stream event")
        if resp.get("error"):
            raise _failure(resp, 500, {}, self.provider)
        self.usage = resp.get("usageMetadata") or self.usage
        out: list[dict[str, Any]] = []
        for pos, cand in enumerate(resp.get("candidates") or []):
            index = cand.get("index", pos)
            parts = self.parts.setdefault(index, CandidateParts(str(resp.get("responseId") or ""), index,
                                                                self.signatures))
            text, thoughts, calls = parts.split((cand.get("content") or {}).get("parts") or [])
            delta: dict[str, Any] = {}
            if index not in self.started:
                self.started.add(index)
                delta["role"] = "assistant"
            if text:
                delta["content"] = text
            if thoughts:
                delta["reasoning"] = thoughts
            if calls:
                first = parts.calls - len(calls)
                delta["tool_calls"] = [{"index": first + i, **call} for i, call in enumerate(calls)]
            finish = native = None
            if cand.get("finishReason"):
                finish, native = finish_of(cand["finishReason"], parts.calls > 0)
                self.finished.add(index)
            if delta or finish:
                choice: dict[str, Any] = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
                if native is not None:
                    choice["native_finish_reason"] = native
                out.append({"object": "chat.completion.chunk", "choices": [choice]})
        if not resp.get("candidates") and (resp.get("promptFeedback") or {}).get("blockReason"):
            reason = resp["promptFeedback"]["blockReason"]
            out.append({"object": "chat.completion.chunk", "choices": [
                {"index": 0, "delta": {"role": "assistant"}, "logprobs": None, "finish_reason": "content_filter",
                 "native_finish_reason": reason}]})
            self.finished = set(range(self.expected))
        if len(self.finished) >= self.expected:
            self.done = True
            out.append({"object": "chat.completion.chunk", "choices": [], "usage": usage_of(self.usage)})
        return out


def _failure(parsed: Any, status: int, headers: Mapping[str, str], provider: str) -> UpstreamFailure:
    err = parsed.get("error") if isinstance(parsed, dict) else None
    err = err if isinstance(err, dict) else {}
    code = err.get("code")
    if isinstance(code, int) and 400 <= code <= 599:
        status = code
    kind = STATUS_KINDS.get(str(err.get("status")))
    return upstream_failure(status, headers, err.get("message"), kind=kind, provider=provider)


class GeminiAdapter(GeminiEmbeddings):
    def __init__(self, spec: ProviderSpec) -> None:
        assert spec.base_url is not None
        self.spec = spec
        headers = {"Content-Type": "application/json"}
        if spec.api_key:
            headers["x-goog-api-key"] = spec.api_key.reveal()
        headers.update(spec.headers)
        self._headers = headers
        self.signatures: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._translator = GeminiTranslator(self.signatures)

    def _url(self, model: str, stream: bool) -> str:
        model = model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"
        action = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return f"{self.spec.base_url}/{model}:{action}"

    def _trim(self) -> None:
        while len(self.signatures) > SIGNATURES_KEPT:
            self.signatures.popitem(last=False)

    def chat_request(self, call: ChatCall) -> UpstreamRequest:
        body = self._translator.body(call.request, call.model.max_output_tokens)
        return UpstreamRequest(self._url(call.deployment.upstream_model, call.stream), orjson.dumps(body),
                               self._headers, call.stream)

    def chat_response(self, body: bytes, call: ChatCall) -> dict[str, Any]:
        resp = json_object(body, "response")
        out = from_gemini(resp, self.signatures)
        self._trim()
        return out

    def chat_stream(self, call: ChatCall) -> GeminiStream:
        self._trim()
        return GeminiStream(self.spec.name, call.request.n or 1, self.signatures)

    def completion_request(self, call: CompletionCall) -> UpstreamRequest:
        raise InvalidRequest("Gemini has no text completions endpoint; use /v1/chat/completions.", param="model")

    def completion_response(self, body: bytes, call: CompletionCall) -> dict[str, Any]:
        raise malformed("completion")  # never reached: completion_request refuses first

    def completion_stream(self, call: CompletionCall) -> GeminiStream:
        return GeminiStream(self.spec.name, 1, self.signatures)

    def error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamFailure:
        parsed = json_or_none(body)
        if isinstance(parsed, list) and parsed:  # streamGenerateContent errors may come as a JSON array
            parsed = parsed[0]
        return _failure(parsed, status, headers, self.spec.name)


PROVIDER = ProviderType(
    name="gemini", display_name="Google Gemini",
    build=lambda spec: HttpProvider(spec, GeminiAdapter(spec), supports_completions=False),
    endpoints=frozenset({"chat", "embeddings"}),
    supported_params=frozenset({"max_tokens", "max_completion_tokens", "stop", "tools", "tool_choice", "temperature",
                                "top_p", "n", "seed", "presence_penalty", "frequency_penalty", "response_format",
                                "reasoning_effort", "reasoning"}),
    presets=(Preset("gemini", "gemini", "Google Gemini", "https://generativelanguage.googleapis.com/v1beta",
                    ("GEMINI_API_KEY", "GOOGLE_API_KEY"), "GEMINI_BASE_URL", "google",
                    vision_prefixes=("gemini-",), model_filter=r"^gemini-",
                    model_aliases=(("gemini-pro", "gemini-2.5-pro"), ("gemini-flash", "gemini-2.5-flash"))),),
)
