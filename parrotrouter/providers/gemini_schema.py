"""JSON Schema to the OpenAPI-3.0 subset the Gemini API accepts (function parameters, response schemas)."""

from __future__ import annotations

from typing import Any

from ..errors import InvalidRequest

KEEP = frozenset({"type", "format", "description", "nullable", "enum", "properties", "required", "items", "anyOf",
                  "minItems", "maxItems", "minimum", "maximum", "minLength", "maxLength", "pattern", "title",
                  "propertyOrdering", "minProperties", "maxProperties", "default"})


def gemini_schema(schema: Any, param: str, defs: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """Inline `$ref`s, turn `["x", "null"]` types into `nullable`, `const` into `enum`, `oneOf` into
    `anyOf`, and drop every keyword Gemini rejects (`additionalProperties`, `$schema`, ...)."""
    if not isinstance(schema, dict):
        return schema
    if depth > 32:
        raise InvalidRequest("This JSON schema is recursive or too deep for Gemini.", param=param)
    defs = {**(defs or {}), **schema.get("$defs", {}), **schema.get("definitions", {})}
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        if name not in defs:
            raise InvalidRequest(f"Unresolvable $ref '{schema['$ref']}' in a JSON schema.", param=param)
        return gemini_schema({**defs[name], **{k: v for k, v in schema.items() if k != "$ref"}}, param, defs, depth + 1)
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, list):
            types = [t for t in value if t != "null"]
            if len(types) != len(value):
                out["nullable"] = True
            if len(types) == 1:
                out["type"] = types[0]
            else:
                out["anyOf"] = [{"type": t} for t in types]
        elif key == "const":
            out["enum"] = [value]
        elif key in ("oneOf", "anyOf"):
            out["anyOf"] = [gemini_schema(v, param, defs, depth + 1) for v in value]
        elif key == "properties":
            out["properties"] = {k: gemini_schema(v, param, defs, depth + 1) for k, v in value.items()}
        elif key == "items":
            out["items"] = gemini_schema(value, param, defs, depth + 1)
        elif key in KEEP:
            out[key] = value
    return out
