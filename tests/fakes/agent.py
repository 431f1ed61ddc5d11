"""One agentic round trip, as the coding clients (Claude Code, Codex) need it from a fake model:
the first turn runs a shell command through whichever shell tool the client offers; once the
command's output is in the conversation, the model answers with it.

The fakes of each wire format find the offered tool names and the tool results in their own
request shape and ask this module what to answer."""

from __future__ import annotations

from typing import Any

COMMAND = "cat parrot.txt"

# Each client's shell tool and the arguments that run COMMAND with it, in order of preference.
SHELL_TOOLS: dict[str, dict[str, Any]] = {
    "Bash": {"command": COMMAND, "description": "Print parrot.txt"},  # Claude Code
    "exec_command": {"cmd": COMMAND},  # Codex (unified exec)
    "shell_command": {"command": COMMAND},  # Codex
    "shell": {"command": ["bash", "-lc", COMMAND]},  # Codex (older)
    "get_weather": {"city": "Paris"},  # the AI SDK and LangChain tests' own tool
}


def tool_call(offered: list[str]) -> tuple[str, dict[str, Any]] | None:
    """The shell tool call to make among the `offered` tool names, or None if none fits."""
    for name, arguments in SHELL_TOOLS.items():
        if name in offered:
            return name, arguments
    return None


def final_text(tool_output: str) -> str:
    """The answer once the command ran: what it printed, as the client reported it."""
    return f"The tool said: {tool_output.strip()}"
