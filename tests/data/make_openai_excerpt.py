"""Cut `openai-openapi-excerpt.json` (beside this script) from OpenAI's published OpenAPI document.

The schema tests (tests/e2e/test_schema.py) validate our responses against a few of OpenAI's
component schemas. The whole document is 3 MB and lives outside the repository, so the tests read
this excerpt instead: the root schemas below and every schema they reach through `$ref`, copied
unchanged (the tests themselves turn OpenAPI 3.0's `nullable: true` into JSON Schema).

Re-run after updating the source document:

    python tests/data/make_openai_excerpt.py ../shared/specs/openai-openapi.json

The source used: repository openai/openai-openapi, commit f85dbe223d40e1a31cba812ab2d755c7e98a92a3
(2026-08-21), MIT licence.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOTS = (
    "CreateChatCompletionResponse",
    "CreateChatCompletionStreamResponse",
    "CreateCompletionResponse",
    "ListModelsResponse",
    "ErrorResponse",
)
SOURCE_COMMIT = "f85dbe223d40e1a31cba812ab2d755c7e98a92a3"
OUT = Path(__file__).resolve().parent / "openai-openapi-excerpt.json"
REF_PREFIX = "#/components/schemas/"


def referenced(node: Any) -> set[str]:
    """Names of the component schemas `node` refers to directly."""
    if isinstance(node, dict):
        found: set[str] = set()
        for key, value in node.items():
            if key == "$ref":
                if not value.startswith(REF_PREFIX):
                    raise ValueError(f"unsupported $ref {value!r}: only component schemas are copied")
                found.add(value[len(REF_PREFIX):])
            else:
                found |= referenced(value)
        return found
    if isinstance(node, list):
        return set().union(*(referenced(v) for v in node)) if node else set()
    return set()


def closure(schemas: dict[str, Any], roots: tuple[str, ...]) -> dict[str, Any]:
    """The roots and every schema they reach, sorted by name."""
    todo, seen = list(roots), set(roots)
    while todo:
        for name in referenced(schemas[todo.pop()]) - seen:
            seen.add(name)
            todo.append(name)
    return {name: schemas[name] for name in sorted(seen)}


def main(source: Path) -> None:
    doc = json.loads(source.read_text())
    excerpt = {
        "openapi": doc["openapi"],
        "info": {
            "title": doc["info"]["title"] + " (excerpt)",
            "version": doc["info"]["version"],
            "license": doc["info"].get("license"),
            "x-source": f"openai/openai-openapi@{SOURCE_COMMIT}; cut by tests/data/make_openai_excerpt.py",
            "x-roots": list(ROOTS),
        },
        "paths": {},
        "components": {"schemas": closure(doc["components"]["schemas"], ROOTS)},
    }
    OUT.write_text(json.dumps(excerpt, indent=1, sort_keys=False) + "\n")
    print(f"{OUT}: {len(excerpt['components']['schemas'])} schemas")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} PATH/TO/openai-openapi.json")
    main(Path(sys.argv[1]))
