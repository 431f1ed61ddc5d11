"""JSON values as the serving core passes them: OpenAI-shaped answers and stream chunks."""

from __future__ import annotations

from typing import TypeAlias

JSONValue: TypeAlias = "dict[str, JSONValue] | list[JSONValue] | str | int | float | bool | None"
JSONObject: TypeAlias = "dict[str, JSONValue]"
# The chunks of one upstream read: relayed together, in one write.
Chunks: TypeAlias = "list[dict[str, JSONValue]]"
