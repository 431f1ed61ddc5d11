"""`POST /v1/embeddings` request, OpenAI's documented fields and limits.

`input` is a string, a list of strings, a list of token ids, or a list of lists of token ids (msgspec
cannot express a union of list types, so `inputs` checks the list forms). OpenAI's limits, enforced
here for every model: at most 2048 inputs, none empty, each at most 8192 tokens and 300,000 tokens
in all (strings counted with cl100k_base, the tokenizer of OpenAI's embedding models).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta, Struct

from ...errors import InvalidRequest
from ...protocol.chat import NonEmptyStr, User
from ...protocol.validation import check_storable
from ...tokens import count_text

MAX_INPUTS = 2048
MAX_INPUT_TOKENS = 8192
MAX_TOTAL_TOKENS = 300_000
MAX_DIMENSIONS = 16_384  # above every embedding model's (the largest today: 4096)
MAX_TOKEN_ID = 2**31 - 1
MAX_TOKEN_BYTES = 128  # the longest cl100k_base token
# A string this long (in characters) is counted in a worker thread, not on the event loop.
COUNT_OFF_LOOP = 64 * 1024
COUNTING_MODEL = "text-embedding-3-small"  # cl100k_base


class EmbeddingsBody(Struct, omit_defaults=True):
    model: NonEmptyStr
    input: str | list[Any]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: Annotated[int, Meta(ge=1, le=MAX_DIMENSIONS)] | None = None
    user: User | None = None


def inputs(body: EmbeddingsBody) -> list[str] | list[list[int]]:
    """The inputs as a list of strings or a list of token-id lists; 400 naming the param when the
    shape, a type, a count or a size is wrong (token counts of strings: `count_tokens`)."""
    value = body.input
    if isinstance(value, str):
        return [_text(value, "input")]
    if not value:
        raise InvalidRequest("'input' must not be an empty list.", param="input")
    if len(value) > MAX_INPUTS:
        raise InvalidRequest(f"'input' has {len(value)} items; at most {MAX_INPUTS} are allowed.", param="input")
    first = value[0]
    if isinstance(first, str):
        return [_text(item, f"input[{i}]") for i, item in enumerate(value)]
    if _is_token(first):
        return [_tokens(value, "input")]
    if isinstance(first, list):
        arrays = [_tokens(item, f"input[{i}]") for i, item in enumerate(value)]
        total = sum(map(len, arrays))
        if total > MAX_TOTAL_TOKENS:
            raise InvalidRequest(f"'input' has {total} tokens in all; at most {MAX_TOTAL_TOKENS} are allowed.",
                                 param="input")
        return arrays
    raise _shape_error("input")


def count_tokens(texts: list[str]) -> list[int]:
    """Each string's cl100k_base tokens; 400 over the per-input or total limit."""
    counts = []
    for i, text in enumerate(texts):
        n = count_text(text, COUNTING_MODEL)
        if n > MAX_INPUT_TOKENS:
            where = "input" if len(texts) == 1 else f"input[{i}]"
            raise InvalidRequest(f"'{where}' has {n} tokens; at most {MAX_INPUT_TOKENS} are allowed per input.",
                                 param=where)
        counts.append(n)
    if sum(counts) > MAX_TOTAL_TOKENS:
        raise InvalidRequest(f"'input' has {sum(counts)} tokens in all; at most {MAX_TOTAL_TOKENS} are allowed.",
                             param="input")
    return counts


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _shape_error(where)
    if not value:
        raise InvalidRequest(f"'{where}' must not be an empty string.", param=where)
    # No cl100k_base token covers more than 128 bytes: a longer string is over the limit uncounted.
    if len(value) > MAX_INPUT_TOKENS * MAX_TOKEN_BYTES:
        raise InvalidRequest(f"'{where}' is too long: at most {MAX_INPUT_TOKENS} tokens are allowed per input.",
                             param=where)
    check_storable(value, where)
    return value


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKEN_ID


def _tokens(value: Any, where: str) -> list[int]:
    if not isinstance(value, list) or not value:
        raise _shape_error(where)
    if len(value) > MAX_INPUT_TOKENS:
        raise InvalidRequest(f"'{where}' has {len(value)} tokens; at most {MAX_INPUT_TOKENS} are allowed per input.",
                             param=where)
    if not all(_is_token(t) for t in value):
        raise InvalidRequest(f"'{where}' must hold token ids: whole numbers from 0 to {MAX_TOKEN_ID}.", param=where)
    return value


def _shape_error(where: str) -> InvalidRequest:
    return InvalidRequest(f"'{where}' must be a string, a list of strings, a list of token ids, or a list of lists "
                          "of token ids (none of them empty).", param=where)
