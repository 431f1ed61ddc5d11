"""Anthropic Messages API (`type: anthropic`).

Chat requests are translated (`request.py`): system/developer messages hoisted to `system`;
consecutive same-role turns merged; images as base64 or url sources; `max_tokens` always sent;
`stop` as `stop_sequences`; tools with `input_schema`; `tool_choice` auto/none/required/named as
auto/none/any/tool (with `disable_parallel_tool_use`); assistant tool calls as `tool_use` blocks
and tool messages as `tool_result` blocks in one user turn; `response_format` as native
structured output (`output_config.format`); reasoning as `thinking` with a budget; `user` as
`metadata.user_id`. The current Messages API has no `temperature`, `top_p` or `top_k`: they are
not sent.
Answers and stream events come back as OpenAI objects (`response.py`); thinking as `reasoning`
with its signature in `reasoning_details`, so a client that sends the message back continues the
turn.

Requests that came in on our own Messages API (`api/messages/`) go natively (`provider.py`,
dialect "anthropic.messages"): the client's body is forwarded with only `model` and the
credentials changed, with the client's `anthropic-version` and `anthropic-beta` headers.
"""

from __future__ import annotations

from ..presets import Preset
from ..registry import ProviderType
from .provider import AnthropicAdapter, AnthropicProvider
from .request import to_anthropic
from .response import AnthropicStream, finish_of, from_anthropic, usage_of

__all__ = ["PROVIDER", "AnthropicAdapter", "AnthropicProvider", "AnthropicStream", "finish_of", "from_anthropic",
           "to_anthropic", "usage_of"]

# The Claude 3 short names (the ParrotRouter docs', Anthropic's former `-latest` aliases and the
# price table's own family ids) name the one Claude 3 model of that name: Anthropic's API takes
# only the dated ids.
ALIASES = (("claude-3-opus", "claude-3-opus-20240229"), ("claude-3-opus-latest", "claude-3-opus-20240229"),
           ("claude-3-sonnet", "claude-3-sonnet-20240229"), ("claude-3-haiku", "claude-3-haiku-20240307"),
           ("claude-3-haiku-latest", "claude-3-haiku-20240307"), ("claude-3-5-sonnet", "claude-3-5-sonnet-20241022"),
           ("claude-3-5-sonnet-latest", "claude-3-5-sonnet-20241022"))

# Anthropic's model deprecations page (docs.anthropic.com/en/docs/about-claude/model-deprecations):
# retirement dates of models the price table does not mark deprecated.
RETIRED = (("claude-v1", "2024-11-06"), ("claude-2", "2025-07-21"), ("claude-3-sonnet-20240229", "2025-07-21"),
           ("claude-3-5-sonnet-20241022", "2025-10-22"), ("claude-3-opus-20240229", "2026-01-05"))

PROVIDER = ProviderType(
    name="anthropic", display_name="Anthropic",
    build=lambda spec: AnthropicProvider(spec, AnthropicAdapter(spec)),
    supported_params=frozenset({"max_tokens", "max_completion_tokens", "stop", "tools", "tool_choice",
                                "parallel_tool_calls", "response_format", "reasoning_effort", "reasoning"}),
    presets=(Preset("anthropic", "anthropic", "Anthropic", "https://api.anthropic.com", ("ANTHROPIC_API_KEY",),
                    "ANTHROPIC_BASE_URL", "anthropic", vision_prefixes=("claude-",), model_filter=r"^claude-",
                    model_aliases=ALIASES, retired=RETIRED),),
)
