"""`POST /v1/completions` request (legacy text completions), OpenAI's documented fields and ranges."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct

from .chat import StreamOptions

Penalty = Annotated[float, Meta(ge=-2.0, le=2.0)]
Prompt = str | list[str] | list[int] | list[list[int]]


class CompletionRequest(Struct, omit_defaults=True):
    model: Annotated[str, Meta(min_length=1)]
    prompt: Prompt
    best_of: Annotated[int, Meta(ge=1, le=20)] | None = None
    echo: bool | None = None
    frequency_penalty: Penalty | None = None
    presence_penalty: Penalty | None = None
    logit_bias: dict[str, Annotated[int, Meta(ge=-100, le=100)]] | None = None
    logprobs: Annotated[int, Meta(ge=0, le=5)] | None = None
    max_tokens: Annotated[int, Meta(ge=0)] | None = None
    n: Annotated[int, Meta(ge=1, le=128)] | None = None
    seed: int | None = None
    stop: str | Annotated[list[str], Meta(max_length=4)] | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    suffix: str | None = None
    temperature: Annotated[float, Meta(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Meta(ge=0.0, le=1.0)] | None = None
    user: str | None = None

    @property
    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    @property
    def output_limit(self) -> int | None:
        return self.max_tokens
