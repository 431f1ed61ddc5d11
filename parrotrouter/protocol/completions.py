"""`POST /v1/completions` request (legacy text completions), OpenAI's documented fields and ranges."""

from __future__ import annotations

from typing import Annotated, Any

from msgspec import Meta, Struct

from ..errors import InvalidRequest
from .chat import MAX_OUTPUT_TOKENS, LogitBias, Seed, Stop, StreamOptions, UsageAccounting, User

Penalty = Annotated[float, Meta(ge=-2.0, le=2.0)]
# str | list[str] | list[int] | list[list[int]]; msgspec cannot express a union of list types,
# so the list forms are checked by `check_prompt`.
Prompt = str | list[Any]


class CompletionRequest(Struct, omit_defaults=True):
    model: Annotated[str, Meta(min_length=1)]
    prompt: Prompt
    best_of: Annotated[int, Meta(ge=0, le=20)] | None = None  # OpenAI's spec: 0..20 (0 counts as 1 here)
    echo: bool | None = None
    frequency_penalty: Penalty | None = None
    presence_penalty: Penalty | None = None
    logit_bias: LogitBias | None = None
    logprobs: Annotated[int, Meta(ge=0, le=5)] | None = None
    max_tokens: Annotated[int, Meta(ge=0, le=MAX_OUTPUT_TOKENS)] | None = None
    n: Annotated[int, Meta(ge=1, le=128)] | None = None
    seed: Seed | None = None
    stop: Stop | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    usage: UsageAccounting | None = None
    suffix: str | None = None
    temperature: Annotated[float, Meta(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Meta(ge=0.0, le=1.0)] | None = None
    user: User | None = None

    @property
    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    @property
    def include_usage(self) -> bool:
        """A stream ends with a usage chunk: asked by `stream_options` or by `usage.include`."""
        return bool((self.stream_options and self.stream_options.include_usage) or (self.usage and self.usage.include))

    @property
    def usage_accounting(self) -> bool:
        return bool(self.usage and self.usage.include)

    @property
    def output_limit(self) -> int | None:
        return self.max_tokens


def check_prompt(prompt: Prompt) -> None:
    """400 unless the prompt is a string, strings, token ids, or lists of token ids."""
    if isinstance(prompt, str):
        return
    if not prompt:
        raise InvalidRequest("'prompt' must not be an empty list.", param="prompt")

    def is_tokens(x: Any) -> bool:
        return isinstance(x, list) and bool(x) and all(isinstance(t, int) and not isinstance(t, bool) and t >= 0
                                                       for t in x)

    if all(isinstance(x, str) for x in prompt) or is_tokens(prompt) or all(is_tokens(x) for x in prompt):
        return
    raise InvalidRequest("'prompt' must be a string, a list of strings, a list of token ids, or a list of "
                         "lists of token ids.", param="prompt")
