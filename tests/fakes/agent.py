"""One agentic round trip, as the coding clients (Claude Code, Codex) need it from a fake model:
the first turn runs a shell command through whichever shell tool the client offers; once the
command's output is in the conversation, the model answers with it.

Each wire format has one function here that reads its request (offered tools, last tool result)
and returns the answer's content in that format; the fakes encode it as JSON or a stream."""

from __future__ import annotations

import json
from typing import Any

COMMAND = "cat parrot.txt"

# Each client's shell tool and the arguments that run COMMAND with it, in order of preference.
TOOL_CALLS: dict[str, dict[str, Any]] = {
    "Bash": {"command": COMMAND, "description": "Print parrot.txt"},  # Claude Code
    "exec_command": {"cmd": COMMAND},  # Codex (unified exec)
    "shell_command": {"command": COMMAND},  # Codex
    "shell": {"command": ["bash", "-lc", COMMAND]},  # Codex (older)
    "get_weather": {"city": "Paris"},  # the AI SDK and LangChain tests' own tool
}


def tool_call(offered: list[str]) -> tuple[str, dict[str, Any]] | None:
    """The tool call to make among the `offered` tool names, or None if none fits."""
    for name, arguments in TOOL_CALLS.items():
        if name in offered:
            return name, arguments
    return None


def final_text(tool_output: str | None) -> str:
    """The answer once the tool ran: what it printed, as the client reported it."""
    return "Hello." if tool_output is None else f"The tool said: {tool_output.strip()}"


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content or "")


# ------------------------------------------------------------------ the three wire formats
def anthropic_turn(body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """Messages API: (content blocks, stop_reason)."""
    messages = body.get("messages") or [{}]
    results = [b for b in messages[-1].get("content") or [] if isinstance(b, dict) and b.get("type") == "tool_result"]
    call = tool_call([t.get("name", "") for t in body.get("tools") or []])
    if not results and call is not None:
        return [{"type": "tool_use", "id": "toolu_01Agent", "name": call[0], "input": call[1]}], "tool_use"
    return [{"type": "text", "text": final_text(_text(results[0].get("content")) if results else None)}], "end_turn"


def chat_turn(body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Chat Completions: (assistant message, finish_reason)."""
    messages = body.get("messages") or [{}]
    result = messages[-1].get("content") if messages[-1].get("role") == "tool" else None
    call = tool_call([t.get("function", {}).get("name", "") for t in body.get("tools") or []])
    if result is None and call is not None:
        return {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_01Agent", "type": "function",
             "function": {"name": call[0], "arguments": json.dumps(call[1])}}]}, "tool_calls"
    return {"role": "assistant", "content": final_text(None if result is None else _text(result))}, "stop"


def responses_turn(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Responses API: output items."""
    items = body.get("input")
    last = items[-1] if isinstance(items, list) and items and isinstance(items[-1], dict) else {}
    result = _text(last.get("output")) if last.get("type") == "function_call_output" else None
    call = tool_call([t.get("name", "") for t in body.get("tools") or [] if isinstance(t, dict)])
    if result is None and call is not None:
        return [{"type": "function_call", "id": "fc_01Agent", "call_id": "call_01Agent", "name": call[0],
                 "arguments": json.dumps(call[1]), "status": "completed"}]
    return [{"type": "message", "id": "msg_01Agent", "role": "assistant", "status": "completed",
             "content": [{"type": "output_text", "text": final_text(result), "annotations": []}]}]
