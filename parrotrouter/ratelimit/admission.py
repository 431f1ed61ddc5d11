"""Taking a request from its rate limits: which limits, and how many tokens a token limit takes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ..auth.principal import Principal
from .limiter import Decision, RateLimiter
from .rules import Defaults, limits_for

DEFAULT_TPM_OUTPUT = 4096  # output tokens a token limit reserves when nothing bounds the answer


async def admit(limiter: RateLimiter, principal: Principal, user: str | None, defaults: Defaults,
                prompt_tokens: Callable[[], Awaitable[int]], output_limit: int | None,
                model_output_cap: int | None) -> Decision | None:
    """Take the request from every limit that applies (429 when one is exhausted); token limits
    take the prompt plus the output cap, reconciled to the real count afterwards. None: no limits."""
    limits = limits_for(principal, user, defaults)
    if not limits:
        return None
    tokens = 0
    if any(lim.tokens for lim in limits):
        output = output_limit or model_output_cap or DEFAULT_TPM_OUTPUT  # 0: no cap the upstream must honour
        tokens = await prompt_tokens() + output
    return await limiter.admit(limits, tokens)
