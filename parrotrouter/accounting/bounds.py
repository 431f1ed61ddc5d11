"""Upper bounds of what an upstream can bill for one request, for credit reservations.

A reservation must cover everything the upstream can charge, or a balance can go negative:

- The prompt side counts every field that reaches the model: messages (text, names, tool calls,
  reasoning), tool and function definitions, response schemas, and any field the gateway passes
  through unread; an image counts `PER_IMAGE` tokens, audio and inline files their encoded size, a
  file reference `PER_FILE_REF`. Text is counted with tiktoken where it is the model's own
  tokenizer (OpenAI's families); for every other family by its UTF-8 bytes, which no byte-level BPE
  or SentencePiece tokenizer exceeds (each token stands for at least one byte).
- The output side is the output cap (plus any thinking budget an adapter adds on top of it) times
  every answer the request asks for (`n`; `best_of` and each prompt of a list on
  /v1/completions), plus predicted-output tokens, which are billed as completion tokens when the
  prediction is rejected.
- Template tokens that no field shows (per message, per request, a tool-use system prompt) are
  added generously.

The cheap bound (`cheap_prompt_bound`) is the body's size in bytes, which is at least the byte
count of every field in it; the precise one (`BillableBound`) tokenizes and is used when a budget
is tight.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from ..errors import InvalidRequest
from ..protocol.chat import AudioPart, ChatCompletionRequest, FilePart, ImagePart, TextPart, UserMessage
from ..protocol.completions import CompletionRequest
from ..providers.translate import thinking_budget
from ..tokens import count_text

# Upper bounds for inputs whose tokens do not show in the body. An image: OpenAI's patch-priced
# models reach ~3,800 tokens (1,536 patches x 2.46), tiled ones ~1,500, Anthropic ~1,600, Gemini
# 258 per 768 px tile; 6,000 covers all of them for images within the vendors' size limits. A file
# reference (`file_id`): up to 100 PDF pages of text and page images.
PER_IMAGE = 6_000
PER_FILE_REF = 200_000
# Template tokens no field shows: OpenAI's recipe adds 3 per message (the role, name and every other
# field of a message are counted from its JSON on top) and 3 to prime the reply; chat templates of
# other families wrap turns in a few more (Llama 3: 5 per message), and tool use adds a system
# prompt (Anthropic: 313-346 tokens).
_PER_MESSAGE = 8
_PER_REQUEST = 64
_WITH_TOOLS = 1024
_EXACT_PREFIXES = ("gpt-3.5", "gpt-4", "gpt-5", "gpt-6", "o1", "o3", "o4", "chatgpt-", "gpt-oss", "text-", "davinci",
                   "babbage")
# Top-level chat fields that are not part of the prompt (sampling and control parameters, our own
# routing fields); every other field is counted as prompt text.
_CHAT_CONTROLS = frozenset({
    "model", "messages", "temperature", "top_p", "n", "stream", "stream_options", "stop", "max_tokens",
    "max_completion_tokens", "presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs",
    "seed", "user", "tool_choice", "parallel_tool_calls", "function_call", "reasoning_effort", "verbosity",
    "metadata", "store", "service_tier", "modalities", "prompt_cache_key", "safety_identifier", "prediction",
    "models", "provider", "route", "transforms", "plugins", "usage",
})
_COMPLETION_CONTROLS = frozenset({
    "model", "prompt", "best_of", "echo", "frequency_penalty", "presence_penalty", "logit_bias", "logprobs",
    "max_tokens", "n", "seed", "stop", "stream", "stream_options", "temperature", "top_p", "user",
    "models", "provider", "route", "transforms", "plugins", "usage",
})


def exact_tokenizer(model: str) -> bool:
    """Whether tiktoken is this model's own tokenizer (OpenAI's families)."""
    return model.rsplit("/", 1)[-1].startswith(_EXACT_PREFIXES)


def _counter(model: str) -> Callable[[str], int]:
    if exact_tokenizer(model):
        return lambda text: count_text(text, model)
    return lambda text: len(text.encode("utf-8", "surrogatepass"))


def _json_text(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode() if value is not None else ""


def _other_fields(raw: dict[str, Any], controls: frozenset[str]) -> Iterable[Any]:
    return (value for key, value in raw.items() if key not in controls and value is not None)


@dataclasses.dataclass(frozen=True, slots=True)
class Billable:
    """Upper bounds of a request's billed tokens: prompt and output."""

    prompt: int
    output: int


def chat_billable(request: ChatCompletionRequest, raw: dict[str, Any], model: str, output_cap: int) -> Billable:
    count = _counter(model)
    prompt = _PER_REQUEST + _tool_overhead(request)
    for message, raw_message in zip(request.messages, raw["messages"], strict=True):
        prompt += _PER_MESSAGE + _message_tokens(message, raw_message, count)
    prompt += sum(count(_json_text(v)) for v in _other_fields(raw, _CHAT_CONTROLS))
    prediction = raw.get("prediction")
    predicted = count(_json_text(prediction)) if prediction is not None else 0
    return Billable(prompt, chat_outputs(request) * (output_cap + _thinking(request) + predicted))


def chat_outputs(request: ChatCompletionRequest) -> int:
    return request.n or 1


def _tool_overhead(request: ChatCompletionRequest) -> int:
    return _WITH_TOOLS if request.tools or request.functions else 0


def _thinking(request: ChatCompletionRequest) -> int:
    """A thinking budget some adapters add on top of the answer's (billed as output)."""
    try:
        return thinking_budget(request) or 0
    except InvalidRequest:  # an effort only the upstream knows: it bills within the output cap
        return 0


def _message_tokens(message: Any, raw_message: Any, count: Callable[[str], int]) -> int:
    """The content, tokenized; every other field of the message (role, name, tool calls and call
    ids, reasoning, fields passed through unread) counted from its JSON."""
    content = getattr(message, "content", None)
    if isinstance(content, str):
        total = count(content)
    elif content is not None:
        total = sum(_part_tokens(part, count) for part in content)
    else:
        total = 0
    if isinstance(raw_message, dict):
        rest = {k: v for k, v in raw_message.items() if k != "content"}
        total += count(_json_text(rest))
    return total


def _part_tokens(part: Any, count: Callable[[str], int]) -> int:
    if isinstance(part, TextPart):
        return count(part.text)
    if isinstance(part, ImagePart):
        return PER_IMAGE
    if isinstance(part, AudioPart):
        return len(part.input_audio.data)  # base64: more characters than the audio has tokens
    if isinstance(part, FilePart):  # a compressed PDF can hold more tokens than its bytes
        ref = part.file
        return max(PER_FILE_REF, count(ref.file_data) if ref.file_data else 0)
    text = getattr(part, "text", None) or getattr(part, "refusal", None)
    return count(text) if text else 0


def chat_unseen_prompt(request: ChatCompletionRequest) -> int:
    """Prompt tokens that do not show in the body's bytes: template tokens, images and files."""
    total = _PER_REQUEST + _tool_overhead(request)
    for message in request.messages:
        if isinstance(message, UserMessage) and isinstance(message.content, list):
            for part in message.content:
                if isinstance(part, ImagePart):
                    total += PER_IMAGE
                elif isinstance(part, FilePart):
                    total += PER_FILE_REF
    return total


def completion_billable(request: CompletionRequest, raw: dict[str, Any], model: str, output_cap: int) -> Billable:
    count = _counter(model)
    prompt = request.prompt
    if isinstance(prompt, str):
        tokens = count(prompt)
    elif prompt and isinstance(prompt[0], int):
        tokens = len(prompt)
    else:
        tokens = sum(count(p) if isinstance(p, str) else len(p) for p in prompt)
    if request.suffix:
        tokens += count(request.suffix)
    tokens += _PER_REQUEST + sum(count(_json_text(v)) for v in _other_fields(raw, _COMPLETION_CONTROLS))
    return Billable(tokens, completion_outputs(request) * output_cap)


def completion_outputs(request: CompletionRequest) -> int:
    """Answers generated: `max(n, best_of)` for each prompt of the request."""
    prompt = request.prompt
    prompts = 1 if isinstance(prompt, str) or (prompt and isinstance(prompt[0], int)) else len(prompt)
    return prompts * max(request.n or 1, request.best_of or 1)


def chat_cheap_billable(request: ChatCompletionRequest, raw: dict[str, Any], body_size: int,
                        output_cap: int) -> Billable:
    """The bound without a tokenizer: the body's bytes plus what does not show in them."""
    prediction = raw.get("prediction")
    predicted = len(_json_text(prediction).encode()) if prediction is not None else 0
    return Billable(body_size + chat_unseen_prompt(request),
                    chat_outputs(request) * (output_cap + _thinking(request) + predicted))


def completion_cheap_billable(request: CompletionRequest, raw: dict[str, Any], body_size: int,
                              output_cap: int) -> Billable:
    return Billable(body_size + _PER_REQUEST, completion_outputs(request) * output_cap)
