"""Tool and response schemas as users write them, cut down to what the Gemini API accepts.

Gemini's Schema (an OpenAPI 3.0 subset) documents `format` as: NUMBER float/double, INTEGER
int32/int64, STRING enum/date-time; and `enum` as the values of a STRING. Anything else makes the
API refuse the whole request ("only 'enum' and 'date-time' are supported for STRING type"), so it
is dropped, its meaning kept in the description."""

from __future__ import annotations

from typing import Any

import pytest
from google.genai import types as gt

from parrotrouter.errors import InvalidRequest
from parrotrouter.providers.gemini_schema import FORMATS, gemini_schema

STRING_FORMATS_USERS_WRITE = ["uri", "email", "uuid", "date", "time", "duration", "hostname", "ipv4", "ipv6",
                              "uri-reference", "iri", "json-pointer", "regex", "byte", "binary", "password"]


def _accepted_by_gemini(schema: Any) -> None:
    """What the Gemini API accepts: formats by type as documented, enums of strings only."""
    if not isinstance(schema, dict):
        return
    gt.Schema.model_validate(schema)  # the SDK's own type: no unknown keywords
    if "format" in schema:
        assert schema["format"] in FORMATS[schema["type"]], schema
    if "enum" in schema:
        assert schema.get("type") == "string" and all(isinstance(v, str) for v in schema["enum"]), schema
    for sub in [*schema.get("properties", {}).values(), schema.get("items"), *schema.get("anyOf", ())]:
        _accepted_by_gemini(sub)


@pytest.mark.parametrize("fmt", STRING_FORMATS_USERS_WRITE)
def test_string_formats_gemini_refuses_are_dropped_and_described(fmt: str) -> None:
    out = gemini_schema({"type": "string", "format": fmt, "description": "The link"}, "tools")
    assert out == {"type": "string", "description": f"The link (format: {fmt})"}
    _accepted_by_gemini(out)


@pytest.mark.parametrize(("kind", "fmt"), [(k, f) for k, fs in FORMATS.items() for f in sorted(fs)])
def test_documented_formats_are_kept(kind: str, fmt: str) -> None:
    schema = {"type": kind, "format": fmt}
    if fmt == "enum":
        schema["enum"] = ["a", "b"]
    assert gemini_schema(schema, "tools") == schema


@pytest.mark.parametrize(("kind", "fmt"), [("number", "int32"), ("integer", "float"), ("integer", "uint8"),
                                           ("number", "decimal"), ("boolean", "date-time")])
def test_formats_of_the_wrong_type_are_dropped(kind: str, fmt: str) -> None:
    assert gemini_schema({"type": kind, "format": fmt}, "tools") == {"type": kind, "description": f"format: {fmt}"}


@pytest.mark.parametrize(("schema", "note"), [
    ({"type": "integer", "enum": [1, 2, 3]}, "one of: 1, 2, 3"),
    ({"type": "number", "enum": [0.5, 1.5]}, "one of: 0.5, 1.5"),
    ({"type": "boolean", "enum": [True]}, "one of: true"),
    ({"enum": ["a", 1]}, 'one of: "a", 1'),
    ({"type": "integer", "const": 7}, "one of: 7"),
])
def test_non_string_enums_are_dropped_and_described(schema: dict[str, Any], note: str) -> None:
    out = gemini_schema(schema, "tools")
    assert "enum" not in out and out["description"] == note
    _accepted_by_gemini(out)


def test_string_enums_are_kept_and_null_becomes_nullable() -> None:
    assert gemini_schema({"type": ["string", "null"], "enum": ["c", "f", None]}, "tools") == {
        "nullable": True, "type": "string", "enum": ["c", "f"]}
    assert gemini_schema({"enum": ["x", "y"]}, "tools") == {"enum": ["x", "y"], "type": "string"}


def test_a_tool_schema_as_users_write_it() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object", "additionalProperties": False,
        "properties": {
            "homepage": {"type": "string", "format": "uri"},
            "contact": {"type": ["string", "null"], "format": "email", "description": "Who to mail"},
            "when": {"type": "string", "format": "date-time"},
            "priority": {"type": "integer", "enum": [1, 2, 3], "format": "int32"},
            "ids": {"type": "array", "items": {"type": "string", "format": "uuid"}, "maxItems": 5},
            "kind": {"oneOf": [{"const": "a"}, {"const": 2}]},
        },
        "required": ["homepage"],
    }
    out = gemini_schema(schema, "tools")
    _accepted_by_gemini(out)
    props = out["properties"]
    assert props["homepage"] == {"type": "string", "description": "format: uri"}
    assert props["contact"] == {"nullable": True, "type": "string", "description": "Who to mail (format: email)"}
    assert props["when"] == {"type": "string", "format": "date-time"}
    assert props["priority"] == {"type": "integer", "format": "int32", "description": "one of: 1, 2, 3"}
    assert props["ids"]["items"] == {"type": "string", "description": "format: uuid"}
    assert props["kind"] == {"anyOf": [{"enum": ["a"], "type": "string"}, {"description": "one of: 2"}]}


def test_a_long_enum_is_described_within_bounds() -> None:
    out = gemini_schema({"type": "integer", "enum": list(range(10_000))}, "tools")
    assert len(out["description"]) <= 500


def test_a_recursive_schema_is_a_400() -> None:
    with pytest.raises(InvalidRequest):
        gemini_schema({"$defs": {"n": {"type": "object", "properties": {"next": {"$ref": "#/$defs/n"}}}},
                       "$ref": "#/$defs/n"}, "tools")
