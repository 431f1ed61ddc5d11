"""Chat messages to a llama.cpp prompt, and the grammars that enforce JSON and forced tool calls."""

from __future__ import annotations

import json
from typing import Any

from ...errors import InvalidRequest
from ...protocol.chat import (
    AssistantMessage,
    ChatCompletionRequest,
    FunctionTool,
    ImagePart,
    JsonObjectFormat,
    JsonSchemaFormat,
    NamedToolChoice,
    RefusalPart,
    TextPart,
    ToolMessage,
    message_text,
)

# A GBNF grammar for any JSON object (json_object mode), as in llama.cpp's grammars/json.gbnf.
JSON_OBJECT_GBNF = r"""
root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws
object ::= "{" ws ( string ":" ws value ("," ws string ":" ws value)* )? "}" ws
array  ::= "[" ws ( value ("," ws value)* )? "]" ws
string ::= "\"" ( [^"\\\x7F\x00-\x1F] | "\\" (["\\bfnrt] | "u" [0-9a-fA-F]{4}) )* "\"" ws
number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws
ws ::= | " " | "\n" [ \t]{0,20}
"""


def chat_messages(request: ChatCompletionRequest, tool_instruction: str | None) -> list[dict[str, str]]:
    """The request's messages as plain role/content strings for a chat template."""
    out: list[dict[str, str]] = []
    for message in request.messages:
        content = getattr(message, "content", None)
        if isinstance(content, list):
            if any(isinstance(p, ImagePart) for p in content):
                raise InvalidRequest("This local model does not accept images.", param="messages")
            if not all(isinstance(p, TextPart | RefusalPart) for p in content):
                raise InvalidRequest("This local model accepts text content only.", param="messages")
        text = message_text(content)
        role = _ROLE_OF.get(type(message), "user")
        if isinstance(message, AssistantMessage) and message.tool_calls:
            calls = [{"name": c.function.name, "arguments": c.function.arguments}
                     for c in message.tool_calls if hasattr(c, "function")]
            text = (text + "\n" if text else "") + json.dumps(calls)
        if isinstance(message, ToolMessage):
            text = f"Result of tool call {message.tool_call_id}: {text}"
        out.append({"role": role, "content": text})
    if tool_instruction:
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": out[0]["content"] + "\n\n" + tool_instruction}
        else:
            out.insert(0, {"role": "system", "content": tool_instruction})
    return out


def _roles() -> dict[type, str]:
    from ...protocol import chat

    return {chat.SystemMessage: "system", chat.DeveloperMessage: "system", chat.UserMessage: "user",
            chat.AssistantMessage: "assistant", chat.ToolMessage: "tool", chat.FunctionMessage: "tool"}


_ROLE_OF = _roles()


def forced_function(request: ChatCompletionRequest) -> FunctionTool | None:
    """The function the request forces, or None; 400 for what this model cannot do."""
    choice = request.tool_choice
    tools = [t for t in request.tools or () if isinstance(t, FunctionTool)]
    if not request.tools or choice == "none":
        return None
    if len(tools) != len(request.tools):
        raise InvalidRequest("Local models support function tools only.", param="tools")
    if isinstance(choice, NamedToolChoice):
        for tool in tools:
            if tool.function.name == choice.function.name:
                return tool
        raise InvalidRequest(f"tool_choice names '{choice.function.name}', which is not in 'tools'.",
                             param="tool_choice")
    if choice == "required" and len(tools) == 1:
        return tools[0]
    raise InvalidRequest(
        "This local model cannot decide on its own whether to call a tool ('tool_choice': "
        f"{json.dumps(choice if isinstance(choice, str) else 'auto')}). Name the function in "
        "'tool_choice' ({\"type\": \"function\", \"function\": {\"name\": ...}}) to force a call, "
        "or use a model with function_calling in /v1/models.", param="tool_choice")


def tool_instruction(tool: FunctionTool) -> str:
    fn = tool.function
    schema = json.dumps(fn.parameters or {"type": "object", "properties": {}})
    about = f" ({fn.description})" if fn.description else ""
    return (f"Call the function `{fn.name}`{about}. Reply with only a JSON object of its arguments, "
            f"following this JSON schema: {schema}")


def grammar_for(request: ChatCompletionRequest, tool: FunctionTool | None) -> Any:
    """A llama.cpp grammar enforcing the requested JSON output, or None."""
    from llama_cpp import LlamaGrammar  # type: ignore[attr-defined]  # re-exported untyped

    schema: dict[str, Any] | None = None
    if tool is not None:
        schema = tool.function.parameters or {"type": "object", "properties": {}}
    elif isinstance(request.response_format, JsonSchemaFormat):
        schema = request.response_format.json_schema.schema or {"type": "object"}
    elif isinstance(request.response_format, JsonObjectFormat):
        return LlamaGrammar.from_string(JSON_OBJECT_GBNF, verbose=False)
    if schema is None:
        return None
    try:
        return LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
    except Exception as exc:  # the converter raises plain exceptions for schemas it cannot express
        param = "tools" if tool is not None else "response_format"
        raise InvalidRequest(f"This JSON schema cannot be enforced by the local model: {exc}",
                             param=param) from None
