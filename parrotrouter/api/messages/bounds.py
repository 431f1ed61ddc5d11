"""What an Anthropic deployment reads of the client's own body that the translated chat body does
not show: an upper bound of its prompt tokens, for credit reservations, and the text of the
blocks the translation drops, for counting a prompt whose usage Anthropic did not report (the
client left first). The translated chat body does not show all of it: block types the
gateway does not translate (search results, ...) are dropped, and documents and images Anthropic
fetches by URL or from its Files API have no chat equivalent. Counted as `accounting/bounds.py`
counts Claude's prompts: text by its UTF-8 bytes (the body's JSON has at least as many), an image
`PER_IMAGE`, a document `PER_FILE_REF` or its encoded size, plus the template's tokens."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from ...accounting.bounds import PER_FILE_REF, PER_IMAGE
from .protocol import BLOCK_TYPES

TEMPLATE = 64  # per request (as accounting/bounds.py)
PER_MESSAGE = 8
WITH_TOOLS = 1024  # the tool-use system prompt


def native_prompt_bound(body: dict[str, Any], body_size: int) -> int:
    """Tokens: the body's bytes without its inline base64 data, plus what does not show in them."""
    messages = body.get("messages")
    total = body_size + TEMPLATE + PER_MESSAGE * (len(messages) if isinstance(messages, list) else 0)
    if body.get("tools") or body.get("mcp_servers"):
        total += WITH_TOOLS
    for block in content_blocks(body):
        source = block.get("source")
        if isinstance(source, dict):
            total += _source(block.get("type"), source)
        elif "file_id" in block:  # e.g. a container upload
            total += PER_FILE_REF
    return max(total, 0)


def _source(block_type: Any, source: dict[str, Any]) -> int:
    """The tokens of a block's source beyond its bytes in the body."""
    image = block_type == "image"
    if source.get("type") == "base64":
        data = source.get("data")
        size = len(data) if isinstance(data, str) else 0
        # an image costs its pixels, not its bytes; a compressed PDF can hold more tokens than bytes
        return PER_IMAGE - size if image else max(PER_FILE_REF - size, 0)
    if source.get("type") in ("url", "file"):
        return PER_IMAGE if image else PER_FILE_REF
    return 0


def unseen_text(body: dict[str, Any]) -> str:
    """The JSON of the content blocks the translation drops (types it does not translate, such as
    search results, inside tool results and documents too) and of Anthropic's server tools."""
    dropped: list[Any] = [block for block in content_blocks(body) if block.get("type") not in BLOCK_TYPES]
    dropped += [t for t in _listed(body.get("tools")) if isinstance(t, dict) and t.get("type") not in (None, "custom")]
    return orjson.dumps(dropped).decode() if dropped else ""


def content_blocks(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every content block of the system prompt and the messages, those inside tool results and
    document content sources too (block by block: the free-form JSON inside is not walked)."""
    stack: list[Any] = [body.get("system"), *(m.get("content") for m in _listed(body.get("messages"))
                                               if isinstance(m, dict))]
    while stack:
        for block in _listed(stack.pop()):
            if not isinstance(block, dict):
                continue
            yield block
            if block.get("type") == "tool_result":
                stack.append(block.get("content"))
            elif block.get("type") == "document" and isinstance(block.get("source"), dict):
                stack.append(block["source"].get("content"))


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
