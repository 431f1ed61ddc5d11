"""JSON Schemas of what the gateway answers, written from its handlers (`api/*/routes.py`,
`serving/core.py`, `accounting/reports.py`, `auth/keystore.py`).

Objects stay open (`additionalProperties` allowed) where an upstream's extra fields pass through
(completions, chunks, usage); the envelope and the gateway's own objects list every field they
always carry as required.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]
REF = "#/components/schemas/{name}"

FINISH_REASONS = ["stop", "length", "tool_calls", "content_filter", "function_call"]


def ref(name: str) -> Schema:
    return {"$ref": REF.format(name=name)}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def obj(properties: dict[str, Schema], required: list[str] | None = None, *, closed: bool = False,
        description: str | None = None) -> Schema:
    """An object schema; `required` defaults to every listed property."""
    out: Schema = {"type": "object", "properties": properties,
                   "required": list(properties) if required is None else required}
    if closed:
        out["additionalProperties"] = False
    if description:
        out["description"] = description
    return out


STRING: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
COUNT: Schema = {"type": "integer", "minimum": 0}
NUMBER: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
OBJECT: Schema = {"type": "object"}
TIMESTAMP: Schema = {"type": "string", "format": "date-time"}
USD: Schema = {"type": "number", "description": "US dollars, exact (written from a decimal)."}
CURRENCY: Schema = {"const": "USD"}

# A decimal a client sends (credits, amounts, caps): a JSON number or a decimal string, so that
# exact amounts need not pass through binary floating point.
MONEY_IN: Schema = {
    "anyOf": [NUMBER, {"type": "string", "pattern": r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"}],
    "description": "US dollars: a JSON number or a decimal string such as \"2.50\".",
}

ERROR_ENVELOPE: Schema = obj({"error": obj({
    "message": STRING,
    "type": STRING,
    "code": STRING,
    "param": nullable(STRING),
    "status": {"type": "integer", "minimum": 400, "maximum": 599},
}, closed=True)}, closed=True, description="Every error: one envelope, whatever failed.")

# What the request cost, as its ledger row says (GET /v1/generation): USD to the nano-dollar.
COST: Schema = {"type": "number", "minimum": 0, "description": "USD the request cost (its ledger row's cost)."}
USAGE: Schema = {**obj({"prompt_tokens": COUNT, "completion_tokens": COUNT, "total_tokens": COUNT, "cost": COST}),
                 "description": "Token counts (the upstream's, or the gateway's own count when it sent none) "
                                "and the cost."}

_CHOICE_COMMON: dict[str, Schema] = {
    "index": COUNT,
    "logprobs": nullable(OBJECT),
}

ASSISTANT_MESSAGE: Schema = obj({
    "role": {"const": "assistant"},
    "content": nullable(STRING),
    "refusal": nullable(STRING),
    "tool_calls": {"type": "array", "items": OBJECT},
}, required=["role", "content", "refusal"])


def _completion(object_type: str, choice: dict[str, Schema], choice_required: list[str]) -> Schema:
    return obj({
        "id": STRING, "object": {"const": object_type}, "created": INT, "model": STRING, "provider": STRING,
        "choices": {"type": "array", "items": obj({**_CHOICE_COMMON, **choice}, required=choice_required)},
        "usage": ref("Usage"),
    })


def _chunk(object_type: str, choice: dict[str, Schema]) -> Schema:
    """A stream chunk: content choices, or (last, when asked for) no choices and the usage."""
    return obj({
        "id": STRING, "object": {"const": object_type}, "created": INT, "model": STRING, "provider": STRING,
        "choices": {"type": "array", "items": obj(
            {**_CHOICE_COMMON, **choice, "finish_reason": nullable({"enum": FINISH_REASONS})},
            required=["index", "finish_reason", *choice])},
        "usage": ref("Usage"),
    }, required=["id", "object", "created", "model", "provider", "choices"])


STREAM_ERROR: Schema = obj({
    "id": STRING, "object": STRING, "created": INT, "model": STRING, "provider": STRING,
    "choices": {"type": "array", "minItems": 1, "maxItems": 1, "items": obj(
        {"index": {"const": 0}, "finish_reason": {"const": "error"}}, required=["index", "finish_reason"])},
    "error": ERROR_ENVELOPE["properties"]["error"],
}, description="The frame of a stream that failed after its first content (the bare error envelope follows "
                "as the last frame; no [DONE]).")


def sse_event(chunk: str) -> Schema:
    """One server-sent event of a generation stream: a JSON chunk, or the final `[DONE]`.

    Under `text/event-stream` this schema describes each event (as Schemathesis reads OpenAPI
    3.1); each frame is `data: <payload>` followed by a blank line."""
    return obj({
        "event": {"const": "message"},
        "data": {"anyOf": [
            {"const": "[DONE]"},
            {"type": "string", "pattern": "^\\{", "contentMediaType": "application/json",
             "contentSchema": {"anyOf": [ref(chunk), ref("StreamErrorFrame"), ref("ErrorEnvelope")]}},
        ]},
    }, required=["data"])


MODEL: Schema = obj({
    "id": STRING, "object": {"const": "model"}, "created": INT, "owned_by": STRING,
    "provider": obj({"id": STRING, "name": STRING}),
    "pricing": nullable(obj({"prompt": NUMBER, "completion": NUMBER, "unit": {"const": "1k_tokens"},
                             "source": nullable({"enum": ["table", "config", "upstream", "local"]})},
                            description="USD per 1,000 tokens, and where the price came from (the genai-prices "
                                        "table, the config file, the upstream's model list, a free local model); "
                                        "null when the price is unknown (then keys that pay with credits cannot "
                                        "use the model).")),
    "context_length": nullable(COUNT), "max_tokens": nullable(COUNT),
    "capabilities": obj({name: BOOL for name in
                         ("chat", "completion", "function_calling", "vision", "embeddings", "json_mode")}),
    "aliases": {"type": "array", "items": STRING},
    "deployments": {"type": "array", "items": STRING},
    "endpoints": {"type": "array", "items": STRING, "description": "The endpoints that serve this model."},
    "native_apis": {"type": "array", "items": STRING,
                    "description": "Inbound APIs a deployment of this model takes in its own format (no "
                                   "translation), e.g. anthropic.messages."},
    "status": obj({"active": BOOL, "message": STRING},
                  description="Live health: a deployment's provider loaded, its probe passing, its breaker closed."),
    "performance": nullable(obj({
        "window_seconds": COUNT, "requests": COUNT, "success_rate": NUMBER,
        "latency_p50_ms": nullable(COUNT), "latency_p95_ms": nullable(COUNT), "ttft_p50_ms": nullable(COUNT),
        "tokens_per_second": nullable(NUMBER),
    }, description="Rolling figures from real traffic over the window; null without traffic (or with "
                   "`performance` off).")),
    "retired": {"type": "boolean", "description": "The price table marks the model deprecated (listed only with "
                                                  "include_retired=true)."},
}, required=["id", "object", "created", "owned_by", "provider", "pricing", "context_length", "max_tokens",
             "aliases", "deployments", "endpoints", "native_apis", "status", "performance", "retired"])

BALANCE: Schema = obj({"credits": USD, "currency": CURRENCY})

API_KEY: Schema = obj({
    "id": STRING, "object": {"const": "api_key"}, "name": STRING, "description": nullable(STRING),
    "prefix": STRING, "account_id": STRING, "permissions": OBJECT, "restrictions": OBJECT, "metadata": OBJECT,
    "expires_at": nullable(TIMESTAMP), "revoked": BOOL, "revoked_at": nullable(TIMESTAMP),
    "created_at": TIMESTAMP, "updated_at": TIMESTAMP, "balance": BALANCE,
}, required=["id", "object", "name", "description", "prefix", "account_id", "permissions", "restrictions",
             "metadata", "expires_at", "revoked", "revoked_at", "created_at", "updated_at"])

API_KEY_WITH_SECRET: Schema = {
    "allOf": [ref("ApiKey"), obj({"key": {"type": "string", "pattern": "^pr-"}})],
    "description": "The key with its secret, shown this once (on creation and rotation).",
}

TOKENS: Schema = obj({"prompt": COUNT, "completion": COUNT, "total": COUNT})
USAGE_TOTALS: Schema = obj({"credits_used": USD, "requests": COUNT, "tokens": TOKENS})

CREDIT_BALANCE: Schema = obj({
    "object": {"const": "credit_balance"},
    "balance": obj({"credits": nullable(USD), "currency": CURRENCY},
                   description="The account's balance; null for the master key (unlimited)."),
    "usage": obj({"daily": USAGE_TOTALS, "monthly": USAGE_TOTALS}),
    "limits": obj({
        "rate_limit": obj({"requests_per_minute": nullable(COUNT), "tokens_per_minute": nullable(COUNT)}),
        "daily_limit": obj({"credits": nullable(USD), "remaining": nullable(USD)}),
    }),
    "billing": OBJECT,
}, required=["object", "balance"], description="`usage`, `limits` and `billing` need the 'read' operation.")

GENERATION: Schema = obj({
    "object": {"const": "generation"}, "id": STRING, "endpoint": STRING, "key_id": nullable(STRING),
    "account_id": nullable(STRING), "requested_model": STRING, "model": nullable(STRING),
    "provider": nullable(STRING), "deployment": nullable(STRING),
    "usage": obj({"prompt_tokens": COUNT, "completion_tokens": COUNT, "total_tokens": COUNT,
                  "cached_tokens": COUNT, "reasoning_tokens": COUNT}),
    "cost": USD, "currency": CURRENCY, "latency_ms": NUMBER, "time_to_first_token_ms": nullable(NUMBER),
    "status": INT, "error_code": nullable(STRING), "streamed": BOOL, "finish_reason": nullable(STRING),
    "user": nullable(STRING), "request_id": nullable(STRING), "session_id": nullable(STRING),
    "metadata": nullable({"type": "object", "additionalProperties": STRING}),
    "content": nullable(obj({"request": nullable(STRING), "response": nullable(STRING),
                             "request_truncated": BOOL, "response_truncated": BOOL})),
    "attempts": {"type": "array", "items": obj({
        "provider": STRING, "deployment": STRING, "status": INT, "error_code": nullable(STRING),
        "latency_ms": NUMBER})},
    "created_at": TIMESTAMP,
})

USAGE_WINDOW: Schema = obj({
    "object": {"const": "usage"}, "granularity": {"enum": ["minute", "hour", "day"]},
    "period": obj({"start": TIMESTAMP, "end": TIMESTAMP}),
    "requests": COUNT, "tokens": TOKENS, "cost": USD, "currency": CURRENCY, "active_users": COUNT,
    "breakdown": obj({"by_model": {"type": "array", "items": obj({
        "name": STRING, "requests": COUNT, "tokens": COUNT, "cost": USD, "avg_latency_ms": NUMBER})}}),
}, required=["object", "granularity", "period", "requests", "tokens", "cost", "currency", "active_users"])

ROUTE_EXPLANATION: Schema = obj({
    "object": {"const": "route.explain"}, "model": STRING, "strategy": STRING,
    "models": {"type": "array", "items": STRING},
    "candidates": {"type": "array", "items": obj({
        "position": COUNT, "model": STRING, "provider": STRING, "deployment": STRING, "conditional": BOOL})},
    "removed": {"type": "array", "items": obj({"deployment": STRING, "filter": STRING, "reason": STRING})},
    "policy": OBJECT,
    "health": {"type": "object", "additionalProperties": obj(
        {"circuit": {"enum": ["closed", "open", "half-open"]}, "in_flight": COUNT, "latency_ms": nullable(NUMBER)},
        required=["circuit"])},
})

READINESS: Schema = obj({
    "status": {"enum": ["ready", "not_ready"]},
    "checks": obj({"started": BOOL, "providers": {"type": "object", "additionalProperties": BOOL},
                   "ledger": OBJECT, "credits": OBJECT, "limits": OBJECT,
                   "provider_health": {"type": "object", "additionalProperties": obj({
                       "healthy": BOOL, "message": STRING, "probe": BOOL, "checked_at": STRING,
                       "open_circuits": COUNT, "success_rate": nullable(NUMBER)},
                       required=["healthy", "message", "probe"])},
                   "healthy_providers": obj({"healthy": COUNT, "required": COUNT})},
                  required=["started", "providers"]),
})

EMBEDDING_LIST: Schema = obj({
    "object": {"const": "list"},
    "data": {"type": "array", "items": obj({
        "object": {"const": "embedding"}, "index": COUNT,
        "embedding": {"anyOf": [{"type": "array", "items": NUMBER}, STRING],
                      "description": "Floats, or base64 of little-endian float32 (`encoding_format`)."}})},
    "model": STRING, "provider": STRING, "usage": obj({"prompt_tokens": COUNT, "total_tokens": COUNT, "cost": COST}),
})

RESPONSE_SCHEMAS: dict[str, Schema] = {
    "ErrorEnvelope": ERROR_ENVELOPE,
    "Usage": USAGE,
    "ChatCompletion": _completion("chat.completion", {
        "message": ASSISTANT_MESSAGE, "finish_reason": {"enum": FINISH_REASONS}},
        ["index", "message", "finish_reason", "logprobs"]),
    "ChatCompletionChunk": _chunk("chat.completion.chunk", {"delta": OBJECT}),
    "TextCompletion": _completion("text_completion", {
        "text": STRING, "finish_reason": {"enum": FINISH_REASONS}}, ["index", "text", "finish_reason", "logprobs"]),
    "TextCompletionChunk": _chunk("text_completion", {"text": STRING}),
    "StreamErrorFrame": STREAM_ERROR,
    "ChatCompletionEvent": sse_event("ChatCompletionChunk"),
    "TextCompletionEvent": sse_event("TextCompletionChunk"),
    "EmbeddingList": EMBEDDING_LIST,
    "Model": MODEL,
    "ModelList": obj({"object": {"const": "list"}, "data": {"type": "array", "items": ref("Model")}}),
    "ChatCompletionList": obj({"object": {"const": "list"}, "data": {"type": "array", "items": ref("ChatCompletion")},
                               "first_id": nullable(STRING), "last_id": nullable(STRING), "has_more": BOOL}),
    "ChatCompletionDeleted": obj({"id": STRING, "object": {"const": "chat.completion.deleted"}, "deleted": BOOL}),
    "ChatCompletionMessageList": obj({"object": {"const": "list"}, "data": {"type": "array", "items": obj(
        {"id": STRING, "role": STRING}, required=["id", "role"])}, "first_id": nullable(STRING),
        "last_id": nullable(STRING), "has_more": BOOL}),
    "ModelDeleted": obj({"id": STRING, "object": {"const": "model"}, "deleted": BOOL}),
    "ApiKey": API_KEY,
    "ApiKeyWithSecret": API_KEY_WITH_SECRET,
    "ApiKeyList": obj({"object": {"const": "list"}, "data": {"type": "array", "items": ref("ApiKey")}}),
    "CreditsAdded": obj({"account_id": STRING, "balance": BALANCE}),
    "CreditBalance": CREDIT_BALANCE,
    "Generation": GENERATION,
    "UsageWindow": USAGE_WINDOW,
    "RouteExplanation": ROUTE_EXPLANATION,
    "Health": obj({"status": {"const": "ok"}}),
    "Readiness": READINESS,
}


def _responses_schemas() -> dict[str, Schema]:
    from ..responses.schemas import SCHEMAS

    return SCHEMAS


RESPONSE_SCHEMAS.update(_responses_schemas())
