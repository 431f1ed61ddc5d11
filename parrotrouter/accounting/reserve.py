"""A request's credit reservation: its maximum cost over every deployment it may be served by."""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal
from typing import Protocol

from ..auth.principal import Principal
from ..pricing import ModelPricing
from ..tokens import encoding_ready
from .bounds import Billable, exact_tokenizer
from .credits import CreditManager, Reservation

DEFAULT_RESERVED_OUTPUT = 16384  # when neither the request nor the catalog bounds the output or context
_PRECISE_IN_THREAD = 256 * 1024  # bodies this large are tokenized off the event loop (tiktoken drops the GIL)


class Bounded(Protocol):
    """What a reservation asks of a request (the canonical generation request has it)."""

    @property
    def body_size(self) -> int: ...

    def billable(self, model: str, output_cap: int) -> Billable: ...

    def cheap_billable(self, output_cap: int) -> Billable: ...


@dataclasses.dataclass(frozen=True, slots=True)
class PricedRoute:
    """A deployment the request may be served by, as the reservation sees it."""

    pricing: ModelPricing
    output_cap: int  # tokens per answer the upstream may generate
    model: str  # the upstream model (its tokenizer)


def pays_with_credits(principal: Principal) -> bool:
    """Whether the caller's requests are billed to a balance (a key of an account, not the master
    key): then only deployments with a known price may serve it — an unknown price would be served
    free."""
    return not principal.is_master and principal.account_id is not None


def output_cap(requested: int | None, max_output: int | None, context_length: int | None) -> int:
    """Tokens per answer an upstream may generate: the client's cap, else the model's, else its
    context window (the only bound left), else a default."""
    return requested or max_output or context_length or DEFAULT_RESERVED_OUTPUT


async def reserve_max_cost(credits: CreditManager, principal: Principal, request: Bounded,
                           routes: list[PricedRoute]) -> Reservation | None:
    """Hold the request's maximum cost — everything the upstream can bill (`bounds.py`): the
    prompt (bounded cheaply by the body's bytes, or tokenized when the budget is tight) plus the
    output cap times every answer asked for, at the dearest price among the routes; 402 when the
    budget cannot cover it. Free routes and the master key reserve nothing."""
    if principal.is_master:
        return None
    priced: list[PricedRoute] = []
    for route in routes:
        if not route.pricing.is_free and not any(p.pricing is route.pricing and p.output_cap == route.output_cap
                                                 and p.model == route.model for p in priced):
            priced.append(route)
    if not priced:
        return None
    # Whole nano-dollars, rounded up, in integer arithmetic (`max_cost_nanos`).
    if len(priced) == 1:  # the common case: one route
        route = priced[0]
        cheap = request.cheap_billable(route.output_cap)
        bound = route.pricing.max_cost_nanos(cheap.prompt, cheap.output)
    else:
        bounds = {cap: request.cheap_billable(cap) for cap in {r.output_cap for r in priced}}
        bound = max([r.pricing.max_cost_nanos(bounds[r.output_cap].prompt, bounds[r.output_cap].output)
                     for r in priced])

    def precise_now() -> int:
        costs = []
        for route in priced:
            billable = request.billable(route.model, route.output_cap)
            costs.append(route.pricing.max_cost_nanos(billable.prompt, billable.output))
        return max(costs)

    async def precise() -> int:
        if request.body_size >= _PRECISE_IN_THREAD or any(
                exact_tokenizer(r.model) and not encoding_ready(r.model) for r in priced):
            return await asyncio.to_thread(precise_now)
        return precise_now()

    return await credits.reserve_nanos(principal, bound, precise)


NANO = Decimal("0.000000001")  # the smallest amount a budget books


async def require_credit(credits: CreditManager, principal: Principal) -> None:
    """402 unless the caller's budget has credit left, for a service that costs the operator an
    upstream call but is not billed (e.g. Anthropic's count_tokens): a nano-dollar is reserved
    and given back at once."""

    async def smallest() -> Decimal:
        return NANO

    reservation = await credits.reserve(principal, NANO, smallest)
    if reservation is not None:
        credits.settled_nanos([(reservation, 0)])  # nothing spent: only the hold is released
