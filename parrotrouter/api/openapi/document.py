"""The gateway's OpenAPI 3.1 document: every route the application registers, described.

`OPERATIONS` describes each (method, path); `build_document` checks it against the routes the
application really has, both ways, so a route cannot be added without being described (the
gateway refuses to start) and a description cannot outlive its route.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from ... import __version__
from ...routing.policy import MAX_RETRIES, TRIGGERS
from ...routing.strategies import ALIASES, STRATEGIES
from ..messages import openapi as messages
from .requests import request_schemas
from .schemas import RESPONSE_SCHEMAS, Schema, ref

OPENAPI_VERSION = "3.1.0"
JSON = "application/json"
SSE = "text/event-stream"
BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]


@dataclasses.dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str
    operation_id: str
    summary: str
    tag: str
    response: str | None  # component schema of the 2xx JSON answer
    status: int = 200
    body: str | None = None  # component schema of the JSON request body
    examples: Schema | None = None  # named request body examples
    parameters: tuple[Schema, ...] = ()
    stream_event: str | None = None  # component schema of one event when `stream: true`
    authenticated: bool = True
    extra_responses: tuple[tuple[str, Schema], ...] = ()
    error_schema: str = "ErrorEnvelope"  # of its 4xx and 5xx answers
    text: bool = False  # the 2xx answer is plain text (Prometheus' format), not JSON


def query(name: str, schema: Schema, description: str, required: bool = False) -> Schema:
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


def header(name: str, description: str, schema: Schema | None = None) -> Schema:
    return {"name": name, "in": "header", "required": False, "schema": schema or {"type": "string"},
            "description": description}


def path_param(name: str, description: str, example: str | None = None) -> Schema:
    out: Schema = {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1},
                   "description": description}
    if example is not None:
        out["example"] = example
    return out


BOOLEAN = {"type": "boolean"}
KEY_ID = path_param("key_id", "The key's id (`key_...`); for credits also an account id (`acct_...`).")

STRATEGY_NAMES = sorted({*STRATEGIES, *ALIASES, "geographic"})
FAILOVER_CONFIG: Schema = {
    "type": "object",
    "properties": {
        "primary": {"type": "object", "properties": {"provider": {"type": "string"}, "model": {"type": "string"}}},
        "fallbacks": {"type": "array", "items": {"type": "object", "properties": {
            "model": {"type": "string"}, "provider": {"type": "string"},
            "trigger": {"anyOf": [{"const": "any_error"}, {"type": "array", "items": {"enum": sorted(TRIGGERS)}}]},
            "reduce_max_tokens": {"type": "integer", "minimum": 1}}}},
        "failure_threshold": {"type": "number", "exclusiveMinimum": 0},
        "success_threshold": {"type": "number", "exclusiveMinimum": 0},
        "health_check_interval": {"type": "number", "exclusiveMinimum": 0},
    },
}

# The routing headers (`routing/policy.py`), read on every generation request.
ROUTING_HEADERS = (
    header("X-Provider", "Pin the first attempt to this provider."),
    header("X-Provider-Preference", "Providers to try first, comma-separated, in order."),
    header("X-Routing-Strategy", "Strategy ordering the deployments.", {"enum": STRATEGY_NAMES}),
    header("X-User-Region", "The caller's region, for the geographic strategy."),
    header("X-Max-Latency-Ms", "Skip deployments slower than this on average.",
           {"type": "number", "minimum": 1, "maximum": 3_600_000}),
    header("X-Max-Cost-Per-1K-Tokens", "Skip deployments dearer than this (USD per 1,000 tokens).",
           {"type": "number", "minimum": 0, "maximum": 1_000}),
    header("X-Failover-Enabled", "`false` keeps only the first deployment.", BOOLEAN),
    header("X-Failover-Providers", "Providers to fail over to first, comma-separated."),
    header("X-Max-Retries", "Retries of the same deployment.",
           {"type": "integer", "minimum": 0, "maximum": MAX_RETRIES}),
    header("X-Retry-Delay-Ms", "Base delay between retries.", {"type": "integer", "minimum": 0, "maximum": 60_000}),
    header("X-Failover-Config", "Primary deployment, conditional fallbacks and breaker settings, as JSON.",
           {"type": "string", "contentMediaType": JSON, "contentSchema": FAILOVER_CONFIG}),
)

# The logging headers (`api/logging_headers.py`), read on every generation request.
PRINTABLE_ID: Schema = {"type": "string", "minLength": 1, "maxLength": 128,
                        "pattern": "^[\\x21-\\x7e]([\\x20-\\x7e]*[\\x21-\\x7e])?$"}
LOGGING_HEADERS = (
    header("X-Logging-Level", "What may be kept of this request: `error` (default) and `info` keep the ledger row "
           "and the labels below; `debug` also lets X-Log-Request/X-Log-Response store content, when the operator "
           "allows it.", {"enum": ["error", "info", "debug"]}),
    header("X-Log-Request", "With `debug`: store the request body.", {"enum": ["true", "false"]}),
    header("X-Log-Response", "With `debug`: store the answer.", {"enum": ["true", "false"]}),
    header("X-Log-Metadata", "Labels kept with the ledger row: a JSON object, at most 16 keys, string values of at "
           "most 256 characters, 2 KiB in all.", {"type": "string", "contentMediaType": JSON, "maxLength": 2048}),
    header("X-Log-User-ID", "The end user to record (the ledger's `user`).", PRINTABLE_ID),
    header("X-Log-Session-ID", "The session to record with the ledger row.", PRINTABLE_ID),
)
GENERATION_HEADERS = ROUTING_HEADERS + LOGGING_HEADERS

USER = [{"role": "user", "content": "Say hello."}]
CHAT_EXAMPLES = {
    "chat": {"value": {"model": "auto", "messages": USER, "max_tokens": 64}},
    "stream": {"value": {"model": "auto", "messages": USER, "stream": True, "stream_options": {"include_usage": True}}},
    "tools": {"value": {"model": "auto", "messages": USER, "tool_choice": "auto", "tools": [
        {"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string"}}}}}]}},
}
COMPLETION_EXAMPLES = {
    "completion": {"value": {"model": "auto", "prompt": "Once upon a time", "max_tokens": 16}},
    "stream": {"value": {"model": "auto", "prompt": ["Once", "Twice"], "stream": True}},
}
KEY_EXAMPLES = {"key": {"value": {"name": "ci", "credits": "5.00", "permissions": {
    "models": ["auto"], "operations": ["read", "write"], "max_requests_per_minute": 60}}}}

RESPONSE_ID = path_param("response_id", "The response id (`resp_...`).")
COMPLETION_ID = path_param("completion_id", "A stored chat completion's id (`chatcmpl-...`).")
PAGE = (query("after", {"type": "string"}, "List what comes after this id (the last of the previous page)."),
        query("limit", {"type": "integer", "minimum": 0, "maximum": 100, "default": 20}, "Page size."),
        query("order", {"enum": ["asc", "desc"], "default": "asc"}, "Creation order (desc: newest first)."))
OPERATIONS: tuple[Operation, ...] = (
    Operation("post", "/v1/chat/completions", "createChatCompletion", "Create a chat completion (JSON, or SSE "
              "with `stream: true`).", "generation", "ChatCompletion", body="ChatCompletionRequest",
              parameters=GENERATION_HEADERS, stream_event="ChatCompletionEvent", examples=CHAT_EXAMPLES),
    Operation("get", "/v1/chat/completions", "listChatCompletions", "The key's account's stored chat completions "
              "(`store: true`).", "generation", "ChatCompletionList", parameters=(
                  query("model", {"type": "string"}, "Only completions of this model."),
                  {"name": "metadata", "in": "query", "style": "deepObject", "explode": True, "description":
                   "Only completions with these metadata pairs (`metadata[key]=value`).",
                   "schema": {"type": "object", "additionalProperties": {"type": "string"}}},
                  *PAGE)),
    Operation("get", "/v1/chat/completions/{completion_id}", "getChatCompletion", "A stored chat completion.",
              "generation", "ChatCompletion", parameters=(COMPLETION_ID,)),
    Operation("post", "/v1/chat/completions/{completion_id}", "updateChatCompletion", "Set a stored chat "
              "completion's metadata.", "generation", "ChatCompletion", body="ChatCompletionUpdate",
              parameters=(COMPLETION_ID,), examples={"label": {"value": {"metadata": {"project": "demo"}}}}),
    Operation("delete", "/v1/chat/completions/{completion_id}", "deleteChatCompletion", "Delete a stored chat "
              "completion.", "generation", "ChatCompletionDeleted", parameters=(COMPLETION_ID,)),
    Operation("get", "/v1/chat/completions/{completion_id}/messages", "listChatCompletionMessages", "The messages "
              "of a stored chat completion's request.", "generation", "ChatCompletionMessageList",
              parameters=(COMPLETION_ID, *PAGE)),
    Operation("post", "/v1/completions", "createCompletion", "Create a text completion (JSON, or SSE with "
              "`stream: true`).", "generation", "TextCompletion", body="CompletionRequest",
              parameters=GENERATION_HEADERS, stream_event="TextCompletionEvent", examples=COMPLETION_EXAMPLES),
    Operation("post", "/v1/embeddings", "createEmbeddings", "Create embeddings of texts or token arrays.",
              "generation", "EmbeddingList", body="EmbeddingsBody", parameters=GENERATION_HEADERS,
              examples={"texts": {"value": {"model": "text-embedding-3-small", "input": ["first", "second"]}}}),
    Operation("get", "/v1/models", "listModels", "List the models this key may use.", "models", "ModelList",
              parameters=(
                  query("active_only", BOOLEAN, "Only models a healthy deployment serves: provider loaded, "
                        "its probe passing, its breaker closed (default true)."),
                  query("capability", {"enum": ["chat", "completion", "embedding", "embeddings", "image",
                                                "function_calling", "vision", "json_mode"]},
                        "Only models with this capability (`embedding` = `embeddings`; `image`: takes image "
                        "input, = `vision`)."),
                  query("provider", {"type": "string"}, "Only models this provider serves (`google` = `gemini`)."),
                  query("include_retired", BOOLEAN, "Also list models the price table marks deprecated "
                        "(default false)."),
                  query("include_capabilities", BOOLEAN, "Include each model's capabilities object "
                        "(default true)."))),
    Operation("get", "/v1/models/{model_id}", "retrieveModel", "Retrieve a model by id, alias or "
              "provider/model (retired models too).", "models", "Model",
              parameters=(path_param("model_id", "A model id, alias, or provider/model name.", "auto"),
                          query("include_capabilities", BOOLEAN, "Include the capabilities object "
                                "(default true)."))),
    Operation("delete", "/v1/models/{model_id}", "deleteModel", "Delete a fine-tuned model at the provider that "
              "serves it (master key only).", "models", "ModelDeleted",
              parameters=(path_param("model_id", "The fine-tuned model's id.",
                                     "ft:gpt-4o-mini:acemeco:suffix:abc123"),)),
    Operation("get", "/health", "health", "Liveness: the process answers.", "operations", "Health",
              authenticated=False),
    Operation("get", "/ready", "ready", "Readiness: started, a provider ready (or "
              "`ready_min_healthy_providers` healthy), ledger and limits healthy.",
              "operations", "Readiness", authenticated=False,
              extra_responses=(("503", {"description": "Not ready (same body, `status: not_ready`).",
                                        "content": {JSON: {"schema": ref("Readiness")}}}),)),
    Operation("post", "/v1/keys", "createKey", "Create an API key (master key only).", "keys", "ApiKeyWithSecret",
              status=201, body="KeyCreate", examples=KEY_EXAMPLES),
    Operation("get", "/v1/keys", "listKeys", "List API keys (master key only).", "keys", "ApiKeyList"),
    Operation("get", "/v1/keys/{key_id}", "getKey", "Show an API key (master key only).", "keys", "ApiKey",
              parameters=(KEY_ID,)),
    Operation("patch", "/v1/keys/{key_id}", "updateKey", "Update an API key; fields present are set, null "
              "clears (master key only).", "keys", "ApiKey", body="KeyUpdate", parameters=(KEY_ID,),
              examples={"update": {"value": {"description": "CI runners", "expires_at": "2030-01-01T00:00:00Z"}}}),
    Operation("delete", "/v1/keys/{key_id}", "revokeKey", "Revoke an API key (master key only).", "keys",
              "ApiKey", parameters=(KEY_ID,)),
    Operation("post", "/v1/keys/{key_id}/rotate", "rotateKey", "Give a key a new secret (master key only).",
              "keys", "ApiKeyWithSecret", parameters=(KEY_ID,)),
    Operation("post", "/v1/keys/{key_id}/credits", "addCredits", "Add (or remove, if negative) USD on the "
              "account of a key or an account id (master key only).", "keys", "CreditsAdded", body="CreditsAdd",
              parameters=(KEY_ID,), examples={"add": {"value": {"amount": "2.50"}}}),
    Operation("get", "/v1/credits", "getCredits", "The calling key's balance, usage and limits.", "accounting",
              "CreditBalance"),
    Operation("get", "/v1/generation", "getGeneration", "The ledger row of one request.", "accounting",
              "Generation", parameters=(query("id", {"type": "string", "minLength": 1},
                                              "The response id (`chatcmpl-...`, `cmpl-...`).", required=True),)),
    Operation("get", "/v1/usage/current", "getCurrentUsage", "Usage in the current minute, hour or day.",
              "accounting", "UsageWindow", parameters=(
                  query("granularity", {"enum": ["minute", "hour", "day"], "default": "hour"}, "The window."),
                  query("include_breakdown", BOOLEAN, "Add a per-model breakdown (default false)."))),
    Operation("post", "/v1/route/explain", "explainRoute", "The routing plan for a chat request, without "
              "running it.", "routing", "RouteExplanation", body="ChatCompletionRequest", parameters=ROUTING_HEADERS,
              examples=CHAT_EXAMPLES),
    Operation("post", "/v1/messages", "createMessage", "Create a message (Anthropic's Messages API: JSON, or SSE "
              "events with `stream: true`; `x-api-key` is accepted too; errors in Anthropic's shape).", "anthropic",
              "AnthropicMessage", body="MessagesRequest", parameters=GENERATION_HEADERS,
              stream_event="AnthropicStreamEvent", examples=messages.EXAMPLES, error_schema="AnthropicError"),
    Operation("post", "/v1/messages/count_tokens", "countMessageTokens", "Count a message request's input tokens "
              "(Anthropic deployments: Anthropic's count; others: an estimate, marked `x-parrotrouter-estimate: "
              "true`). Not billed.", "anthropic", "MessageTokensCount", body="CountTokensRequest",
              examples=messages.COUNT_EXAMPLES, error_schema="AnthropicError"),
    Operation("post", "/v1/responses", "createResponse", "Create a model response (OpenAI's Responses API; JSON, "
              "or typed SSE events with `stream: true`).", "generation", "ResponseObject", body="ResponsesRequest",
              parameters=GENERATION_HEADERS, stream_event="ResponseStreamEvent"),
    Operation("get", "/v1/responses/{response_id}", "getResponse", "A stored response (this key's account's).",
              "generation", "ResponseObject", parameters=(RESPONSE_ID,)),
    Operation("delete", "/v1/responses/{response_id}", "deleteResponse", "Delete a stored response.",
              "generation", "ResponseDeleted", parameters=(RESPONSE_ID,)),
    Operation("get", "/v1/responses/{response_id}/input_items", "listResponseInputItems", "The input items of a "
              "stored response.", "generation", "ResponseItemList", parameters=(
                  RESPONSE_ID,
                  query("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}, "Page size."),
                  query("order", {"enum": ["asc", "desc"], "default": "desc"}, "Item order."),
                  query("after", {"type": "string"}, "List items after this item id."),
                  query("before", {"type": "string"}, "List items before this item id."))),
    Operation("get", "/openapi.json", "getOpenAPI", "This document.", "operations", None, authenticated=False),
    Operation("get", "/metrics", "metrics", "Prometheus metrics (master key, metrics token or a trusted network; "
              "404 when the `metrics` setting is off).", "operations", None, text=True),
)

_ENVELOPE = {JSON: {"schema": ref("ErrorEnvelope")}}
ERRORS: dict[str, Schema] = {
    "4XX": {"description": "The request cannot be served as sent.", "content": _ENVELOPE},
    "5XX": {"description": "Upstream or gateway failure.", "content": _ENVELOPE},
}


def _errors(schema: str) -> dict[str, Schema]:
    if schema == "ErrorEnvelope":
        return ERRORS
    content = {JSON: {"schema": ref(schema)}}
    return {code: {**response, "content": content} for code, response in ERRORS.items()}


def _operation(op: Operation) -> Schema:
    success: Schema = {JSON: {"schema": ref(op.response) if op.response else {"type": "object"}}}
    if op.text:
        success = {"text/plain": {"schema": {"type": "string"}}}
    if op.stream_event is not None:
        success[SSE] = {"schema": ref(op.stream_event)}
    out: Schema = {
        "operationId": op.operation_id, "summary": op.summary, "tags": [op.tag],
        "responses": {str(op.status): {"description": "Success.", "content": success}, **dict(op.extra_responses),
                      **_errors(op.error_schema)},
    }
    out["security"] = BEARER if op.authenticated else []
    if op.parameters:
        out["parameters"] = list(op.parameters)
    if op.body is not None:
        media: Schema = {"schema": ref(op.body)}
        if op.examples:
            media["examples"] = op.examples
        out["requestBody"] = {"required": True, "content": {JSON: media}}
    return out


def check_routes(routes: Iterable[tuple[str, str]], operations: Iterable[Operation] = OPERATIONS) -> None:
    """Raise unless `routes` (method, canonical path; HEAD ignored) and the operations match."""
    served = {(m.lower(), p) for m, p in routes if m.upper() != "HEAD"}
    described = {(op.method, op.path) for op in operations}
    missing, stale = served - described, described - served
    if missing or stale:
        raise RuntimeError(f"OpenAPI operations out of step with the routes: undescribed {sorted(missing)}, "
                           f"no such route {sorted(stale)}")


def build_document(routes: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """The OpenAPI document of an application with these routes."""
    check_routes(routes)
    paths: dict[str, Schema] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op)
    schemas = request_schemas()
    inbound = messages.request_schemas()
    shared = {name for name in set(schemas) & set(inbound) if schemas[name] != inbound[name]}  # one struct: fine
    clash = shared | (set(schemas) | set(inbound)) & (set(RESPONSE_SCHEMAS) | set(messages.RESPONSE_SCHEMAS))
    schemas.update(inbound)
    if clash:
        raise RuntimeError(f"request and response schemas share names: {sorted(clash)}")
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "ParrotRouter", "version": __version__,
                 "description": "Self-hosted, OpenAI-compatible LLM gateway. Errors always come as "
                                "`{\"error\": {message, type, code, param, status}}`.",
                 "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"}},
        "paths": paths,
        "components": {
            "schemas": {**schemas, **RESPONSE_SCHEMAS, **messages.RESPONSE_SCHEMAS},
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                               "description": "An API key (`pr-...`) or the master key."}},
        },
    }
