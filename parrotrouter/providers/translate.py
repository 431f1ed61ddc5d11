"""Shared pieces of translating OpenAI requests to other wire formats (pure functions)."""

from __future__ import annotations

import base64
import re
from typing import Any

import orjson

from ..errors import InvalidRequest, echo
from ..protocol.chat import ChatCompletionRequest, message_text

_DATA_URL = re.compile(r"^data:(?P<mime>[\w/+.-]+);base64,(?P<data>.*)$", re.DOTALL)

# Thinking budgets for OpenAI's reasoning_effort levels.
EFFORT_BUDGET = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32768}


def data_url(url: str) -> tuple[str, str] | None:
    """(mime type, base64 data) of a data: URL, or None for any other URL."""
    match = _DATA_URL.match(url)
    if match is None:
        return None
    data = match.group("data")
    try:
        base64.b64decode(data[:64] + "=" * (-len(data[:64]) % 4), validate=True)
    except ValueError:
        raise InvalidRequest("An image data URL does not hold valid base64.", param="messages") from None
    return match.group("mime"), data


def parse_arguments(arguments: str, where: str) -> dict[str, Any]:
    """A tool call's JSON arguments as an object (providers take objects, OpenAI sends strings)."""
    if not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        raise InvalidRequest(f"The arguments of a tool call are not valid JSON ({where}).", param="messages") from None
    if not isinstance(value, dict):
        raise InvalidRequest(f"The arguments of a tool call must be a JSON object ({where}).", param="messages")
    return value


def dump_arguments(value: Any) -> str:
    return orjson.dumps(value if value is not None else {}).decode()


def thinking_budget(request: ChatCompletionRequest) -> int | None:
    """A thinking budget from `reasoning_effort` or an OpenRouter-style `reasoning` object."""
    reasoning = request.reasoning or {}
    if reasoning.get("enabled") is False or reasoning.get("effort") == "none" or request.reasoning_effort == "none":
        return None
    if isinstance(reasoning.get("max_tokens"), int):
        return max(1024, int(reasoning["max_tokens"]))
    effort = reasoning.get("effort") or request.reasoning_effort
    if effort is None:
        return EFFORT_BUDGET["medium"] if reasoning.get("enabled") else None
    if not isinstance(effort, str) or effort not in EFFORT_BUDGET:
        raise InvalidRequest(f"Unknown reasoning effort '{echo(effort)}'.", param="reasoning")
    return EFFORT_BUDGET[effort]


def reject_unsupported(request: ChatCompletionRequest, provider: str) -> None:
    """OpenAI features this provider has no equivalent for: a clear 400, never a silent change."""
    if (request.n or 1) > 1:
        raise InvalidRequest(f"'n' greater than 1 is not supported by the provider '{provider}'.", param="n")
    if request.logprobs:
        raise InvalidRequest(f"'logprobs' is not supported by the provider '{provider}'.", param="logprobs")
    if request.audio or (request.modalities and "audio" in request.modalities):
        raise InvalidRequest(f"Audio output is not supported by the provider '{provider}'.", param="modalities")


def system_text(request: ChatCompletionRequest) -> str:
    """System and developer messages, joined in order."""
    from ..protocol.chat import DeveloperMessage, SystemMessage

    return "\n\n".join(message_text(m.content) for m in request.messages
                       if isinstance(m, SystemMessage | DeveloperMessage))
