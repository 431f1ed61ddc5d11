"""Request body schemas, generated from the msgspec structs the handlers decode into.

The structs are the one source of truth for what a request may carry; msgspec writes their
schemas. A few things the structs cannot say are added here: that a datetime needs a time zone
(RFC 3339 `date-time`), that a Decimal may be sent as a number or a decimal string, the list
forms of a completion `prompt` (checked by `check_prompt`), and the OpenRouter routing fields
(`models`, `provider`) that `routing/policy.py` reads from the raw body.
"""

from __future__ import annotations

from typing import Any

import msgspec
import msgspec.inspect as mi

from ...auth.key_schema import CreditsAdd, KeyCreate, KeyUpdate
from ...protocol.chat import ChatCompletionRequest, ChatCompletionUpdate
from ...protocol.completions import CompletionRequest
from ..embeddings.protocol import MAX_INPUT_TOKENS, MAX_INPUTS, EmbeddingsBody
from ..responses.protocol import ResponsesRequest
from .schemas import BOOL, MONEY_IN, REF, STRING, Schema, nullable, obj

REQUEST_TYPES: tuple[type[Any], ...] = (ChatCompletionRequest, ChatCompletionUpdate, CompletionRequest, EmbeddingsBody,
                                        KeyCreate, KeyUpdate, CreditsAdd, ResponsesRequest)

_NAMES = {"type": "array", "items": {"type": "string", "minLength": 1}}
_PRICE = {"anyOf": [{"type": "number", "minimum": 0}, {"type": "string"}]}
ROUTING_FIELDS: dict[str, Schema] = {
    "models": {**_NAMES, "description": "Fallback models, tried in order after the requested one (OpenRouter)."},
    "provider": {**obj({
        "order": _NAMES, "only": _NAMES, "ignore": _NAMES, "allow_fallbacks": BOOL, "require_parameters": BOOL,
        "sort": {"enum": ["price", "throughput", "latency"]},
        "max_price": obj({"prompt": nullable(_PRICE), "completion": nullable(_PRICE)}, required=[]),
    }, required=[]), "description": "Provider preferences (OpenRouter's `provider` object)."},
}

_TOKEN_IDS = {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0}}
PROMPT: Schema = {"anyOf": [
    STRING,
    {"type": "array", "minItems": 1, "items": STRING},
    _TOKEN_IDS,
    {"type": "array", "minItems": 1, "items": _TOKEN_IDS},
], "description": "A string, a list of strings, a list of token ids, or a list of lists of token ids."}


_TEXT = {"type": "string", "minLength": 1}
_INPUT_IDS = {**_TOKEN_IDS, "maxItems": MAX_INPUT_TOKENS}
EMBEDDING_INPUT: Schema = {"anyOf": [
    _TEXT,
    {"type": "array", "minItems": 1, "maxItems": MAX_INPUTS, "items": _TEXT},
    _INPUT_IDS,
    {"type": "array", "minItems": 1, "maxItems": MAX_INPUTS, "items": _INPUT_IDS},
], "description": f"A string, a list of strings, a list of token ids, or a list of lists of token ids: at most "
                  f"{MAX_INPUTS} inputs of at most {MAX_INPUT_TOKENS} tokens each, 300,000 in all."}


def request_schemas() -> dict[str, Schema]:
    """Component schemas of every request body, by struct name."""
    _, components = msgspec.json.schema_components(REQUEST_TYPES, ref_template=REF)
    components = _decimals_as_money(components)
    _mark_datetimes(components, REQUEST_TYPES)
    for name in ("ChatCompletionRequest", "CompletionRequest"):
        properties = components[name]["properties"]
        properties.update(ROUTING_FIELDS)
        # `auto` names the gateway's first model: an example that works on every gateway.
        properties["model"]["examples"] = ["auto"]
    components["CompletionRequest"]["properties"]["prompt"] = PROMPT
    components["EmbeddingsBody"]["properties"].update(ROUTING_FIELDS, input=EMBEDDING_INPUT)
    out: dict[str, dict[str, Any]] = components
    return out


def _decimals_as_money(node: Any) -> Any:
    if isinstance(node, dict):
        if node.get("type") == "string" and node.get("format") == "decimal":
            return dict(MONEY_IN)
        return {k: _decimals_as_money(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_decimals_as_money(v) for v in node]
    return node


def _mark_datetimes(components: dict[str, Schema], types: tuple[type[Any], ...]) -> None:
    """msgspec writes `format: date-time` only for datetimes declared tz-aware; the handlers
    require a time zone anyway (`check_expiry`), so say so in the schema."""
    seen: set[type[Any]] = set()
    todo = list(mi.multi_type_info(types))
    while todo:
        info = todo.pop()
        if isinstance(info, mi.UnionType):
            todo += info.types
        elif isinstance(info, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
            todo.append(info.item_type)
        elif isinstance(info, mi.DictType):
            todo.append(info.value_type)
        elif isinstance(info, mi.StructType) and info.cls not in seen:
            seen.add(info.cls)
            for field in info.fields:
                todo.append(field.type)
                if _has_datetime(field.type):
                    prop = components[info.cls.__name__]["properties"][field.encode_name]
                    for branch in prop.get("anyOf", [prop]):
                        if branch.get("type") == "string":
                            branch["format"] = "date-time"


def _has_datetime(info: mi.Type) -> bool:
    if isinstance(info, mi.UnionType):
        return any(isinstance(t, mi.DateTimeType) for t in info.types)
    return isinstance(info, mi.DateTimeType)
