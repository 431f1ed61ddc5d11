"""JSON Schema to the OpenAPI-3.0 subset the Gemini API accepts (function parameters, response schemas)."""

from __future__ import annotations

from typing import Any

import orjson

from ..errors import InvalidRequest

KEEP = frozenset({"type", "format", "description", "nullable", "enum", "properties", "required", "items", "anyOf",
                  "minItems", "maxItems", "minimum", "maximum", "minLength", "maxLength", "pattern", "title",
                  "propertyOrdering", "minProperties", "maxProperties", "default"})


def gemini_schema(schema: Any, param: str, defs: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """Inline `$ref`s, turn `["x", "null"]` types into `nullable`, `const` into `enum`, `oneOf` into
    `anyOf`, and drop every keyword Gemini rejects (`additionalProperties`, `$schema`, ...); a
    `format` or `enum` Gemini refuses is dropped with its meaning kept in the description."""
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
    return _fit_format_and_enum(out)


# The formats Gemini accepts, by type ("only 'enum' and 'date-time' are supported for STRING type").
FORMATS: dict[str, frozenset[str]] = {"string": frozenset({"enum", "date-time"}),
                                      "number": frozenset({"float", "double"}),
                                      "integer": frozenset({"int32", "int64"})}
MAX_NOTE = 500  # characters of a dropped keyword's meaning added to the description


def _fit_format_and_enum(out: dict[str, Any]) -> dict[str, Any]:
    notes = []
    kind = out.get("type")
    fmt = out.get("format")
    if fmt is not None and (not isinstance(kind, str) or fmt not in FORMATS.get(kind, ())):
        del out["format"]
        notes.append(f"format: {fmt}" if isinstance(fmt, str) else "")
    enum = out.get("enum")
    if enum is not None:
        values = [v for v in enum if v is not None] if isinstance(enum, list) else []
        if isinstance(enum, list) and len(values) < len(enum):
            out["nullable"] = True
        if values and kind in (None, "string") and all(isinstance(v, str) for v in values):
            out["enum"] = values  # Gemini's enums are strings (of a STRING type)
            out["type"] = "string"
        else:  # numbers, booleans, objects: Gemini refuses them as enum values
            del out["enum"]
            if values:
                notes.append("one of: " + ", ".join(orjson.dumps(v).decode() for v in values))
    notes = [n for n in notes if n]
    if notes:
        note = "; ".join(notes)
        note = note if len(note) <= MAX_NOTE else note[:MAX_NOTE - 1] + "…"
        description = out.get("description")
        out["description"] = f"{description} ({note})" if isinstance(description, str) and description else note
    return out
