"""Model prices in USD, from the maintained `genai-prices` table or a config override.

Money is `Decimal`, never float. Prices are per million tokens internally; the API shows them per
1k tokens (the ParrotRouter `/v1/models` shape).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from genai_prices import types as gp_types
    from genai_prices.data_snapshot import DataSnapshot

_THOUSAND = Decimal(1000)


def get_snapshot() -> DataSnapshot:
    """genai-prices' table, imported on first use: a gateway whose models all have configured
    prices never loads it (pydantic models and an HTTP client come with it)."""
    from genai_prices.data_snapshot import get_snapshot as snapshot

    return snapshot()
ZERO = Decimal(0)


@dataclasses.dataclass(frozen=True, slots=True)
class TokenUsage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclasses.dataclass(frozen=True, slots=True)
class Linear:
    """A price that is linear in the token counts, per million tokens. For a genai-prices table
    without tiers the coefficients are read off the table's own calculation: the same answer for a
    fraction of the work (`calc_price` resolves units and validates on every call, ~80 µs)."""

    request: Decimal  # per request, not per million tokens
    uncached_mtok: Decimal
    cache_read_mtok: Decimal
    cache_write_mtok: Decimal
    output_mtok: Decimal

    def pico_rates(self) -> tuple[int, int, int, int, int] | None:
        exact = [self.request.scaleb(12), *(price.scaleb(6) for price in (
            self.uncached_mtok, self.cache_read_mtok, self.cache_write_mtok, self.output_mtok))]
        if any(x != x.to_integral_value() for x in exact):
            return None
        r = [int(x) for x in exact]
        return r[0], r[1], r[2], r[3], r[4]


@dataclasses.dataclass(frozen=True, slots=True)
class ModelPricing:
    """Flat per-million-token prices; `table` keeps genai-prices' full price (tiers, cache)."""

    prompt_mtok: Decimal
    completion_mtok: Decimal
    cached_prompt_mtok: Decimal | None = None
    table: gp_types.ModelPrice | None = dataclasses.field(default=None, compare=False, repr=False)
    # The highest prices of a table (long prompts cost more in tiered ones; a cache write can cost
    # more than plain input): for upper bounds.
    prompt_max_mtok: Decimal | None = None
    completion_max_mtok: Decimal | None = None
    linear: Linear | None = dataclasses.field(default=None, compare=False, repr=False)
    # `linear` in integer pico-dollars (per request, per uncached prompt token, per cache read, per
    # cache write, per completion token), where every price is a whole number of them: the
    # per-request cost in exact integer arithmetic.
    rates: tuple[int, int, int, int, int] | None = dataclasses.field(init=False, compare=False, repr=False)
    # max_cost's prices: per million prompt tokens, per million completion tokens, per request
    _bounds: tuple[Decimal, Decimal, Decimal] = dataclasses.field(init=False, compare=False, repr=False)
    # `_bounds` in integer pico-dollars, where each is a whole number of them (else None)
    _bound_picos: tuple[int, ...] | None = dataclasses.field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.linear is None and self.table is None:  # flat prices (config): linear too
            cached = self.prompt_mtok if self.cached_prompt_mtok is None else self.cached_prompt_mtok
            object.__setattr__(self, "linear", Linear(ZERO, self.prompt_mtok, cached, self.prompt_mtok,
                                                      self.completion_mtok))
        object.__setattr__(self, "rates", None if self.linear is None else self.linear.pico_rates())
        prompt = self.prompt_max_mtok
        if prompt is None:  # config prices: a cached price is not assumed to be the cheaper one
            prompt = max(self.prompt_mtok, self.cached_prompt_mtok or ZERO)
        completion = self.completion_max_mtok if self.completion_max_mtok is not None else self.completion_mtok
        if self.linear is not None:
            request = self.linear.request
        else:  # tiered table: probe its per-request price once
            assert self.table is not None
            request = _table_cost(self.table, TokenUsage())
        object.__setattr__(self, "_bounds", (prompt, completion, request))
        exact = (prompt.scaleb(6), completion.scaleb(6), request.scaleb(12))  # pico-dollars per token, per request
        object.__setattr__(self, "_bound_picos", tuple(int(x) for x in exact)
                           if all(x == x.to_integral_value() for x in exact) else None)

    @property
    def is_free(self) -> bool:
        return not (self.prompt_mtok or self.completion_mtok or self.prompt_max_mtok or self.completion_max_mtok)

    def cost(self, usage: TokenUsage) -> Decimal:
        """USD cost of `usage` (prompt tokens include cached tokens, as in OpenAI's usage)."""
        return self.cost_of(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens,
                            usage.cache_write_tokens)

    def cost_of(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0,
                cache_write_tokens: int = 0) -> Decimal:
        """`cost` from the counts themselves (the ledger's per-request call)."""
        lin = self.linear
        if lin is None:  # tiered: the tier depends on the prompt's size
            assert self.table is not None
            usage = TokenUsage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                               cached_tokens=cached_tokens, cache_write_tokens=cache_write_tokens)
            return _table_cost(self.table, usage)
        picos = self.cost_picos(prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens)
        if picos is not None:
            return Decimal(picos).scaleb(-12)
        read = min(cached_tokens, prompt_tokens)
        write = min(cache_write_tokens, prompt_tokens - read)
        uncached = prompt_tokens - read - write
        # a price finer than a pico-dollar per token; per million tokens, exact (unlike a division)
        total = (uncached * lin.uncached_mtok + read * lin.cache_read_mtok + write * lin.cache_write_mtok
                 + completion_tokens * lin.output_mtok)
        return total.scaleb(-6) + lin.request

    def cost_picos(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0,
                   cache_write_tokens: int = 0) -> int | None:
        """`cost_of` in integer pico-dollars (exactly `cost_of`'s value), or None where a price is
        not a whole number of pico-dollars per token (or is tiered)."""
        rates = self.rates
        if rates is None:
            return None
        read = min(cached_tokens, prompt_tokens)
        write = min(cache_write_tokens, prompt_tokens - read)
        uncached = prompt_tokens - read - write
        return rates[0] + uncached * rates[1] + read * rates[2] + write * rates[3] + completion_tokens * rates[4]

    def max_cost_nanos(self, prompt_tokens: int, max_completion_tokens: int) -> int:
        """`max_cost` in whole nano-dollars, rounded up (integer arithmetic where the prices are
        whole pico-dollars per token, as they nearly always are)."""
        picos = self._bound_picos
        if picos is None:
            return int(self.max_cost(prompt_tokens, max_completion_tokens).scaleb(9).to_integral_value(ROUND_CEILING))
        return -(-(prompt_tokens * picos[0] + max_completion_tokens * picos[1] + picos[2]) // 1000)

    def max_cost(self, prompt_tokens: int, max_completion_tokens: int) -> Decimal:
        """Upper bound of the cost of a request: highest tier prices, every prompt token at the
        dearest of the input, cache-read and cache-write prices, plus any per-request price."""
        prompt, completion, request = self._bounds
        return (prompt_tokens * prompt + max_completion_tokens * completion).scaleb(-6) + request

    def per_1k(self) -> dict[str, str]:
        return {
            "prompt": _fmt(self.prompt_mtok / _THOUSAND),
            "completion": _fmt(self.completion_mtok / _THOUSAND),
            "unit": "1k_tokens",
        }


FREE = ModelPricing(prompt_mtok=ZERO, completion_mtok=ZERO)


def _fmt(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


def _base(price: Any) -> Decimal | None:
    if price is None:
        return None
    if isinstance(price, Decimal):
        return price
    base = getattr(price, "base", None)  # TieredPrices
    return base if isinstance(base, Decimal) else None


def _highest(price: Any) -> Decimal | None:
    base = _base(price)
    tiers = getattr(price, "tiers", None) or ()
    return max([base, *(t.price for t in tiers)]) if base is not None else None


def _table_cost(table: gp_types.ModelPrice, usage: TokenUsage) -> Decimal:
    from genai_prices import Usage

    calc = table.calc_price(
        Usage(
            input_tokens=usage.prompt_tokens,
            cache_read_tokens=usage.cached_tokens or None,
            cache_write_tokens=usage.cache_write_tokens or None,
            output_tokens=usage.completion_tokens,
        )
    )
    return Decimal(calc["total_price"])


_M = 1_000_000


def linear_form(table: gp_types.ModelPrice) -> Linear | None:
    from genai_prices import types as gp_types

    """The table's price as a linear function of the token counts, or None when it is not one
    (tiered prices) or the table cannot price the probes. Each coefficient is what the table
    itself charges for a million tokens of one kind."""
    if any(isinstance(v, gp_types.TieredPrices) for v in vars(table).values()):
        return None
    try:
        base = _table_cost(table, TokenUsage())
        return Linear(
            request=base,
            uncached_mtok=_table_cost(table, TokenUsage(prompt_tokens=_M)) - base,
            cache_read_mtok=_table_cost(table, TokenUsage(prompt_tokens=_M, cached_tokens=_M)) - base,
            cache_write_mtok=_table_cost(table, TokenUsage(prompt_tokens=_M, cache_write_tokens=_M)) - base,
            output_mtok=_table_cost(table, TokenUsage(completion_tokens=_M)) - base,
        )
    except Exception:  # a table we cannot probe is priced by genai-prices on each call
        return None


def _current_price(info: gp_types.ModelInfo) -> gp_types.ModelPrice:
    return info.get_prices(datetime.now(tz=UTC))


@functools.cache
def known_models(genai_provider_id: str) -> tuple[tuple[str, int | None, ModelPricing], ...]:
    """(model id, context window, pricing) for every model genai-prices lists for a provider."""
    snapshot = get_snapshot()
    provider = next((p for p in snapshot.providers if p.id == genai_provider_id), None)
    if provider is None:
        return ()
    out = []
    for info in provider.models:  # deprecated ones too: providers keep serving them for a while
        pricing = pricing_from_table(info)
        if pricing is None:
            continue
        out.append((info.id, info.context_window, pricing))
    return tuple(out)


@functools.cache
def retired_ids(genai_provider_id: str) -> frozenset[str]:
    """The ids the table marks deprecated at a provider (retired: still priced, no longer listed)."""
    provider = next((p for p in get_snapshot().providers if p.id == genai_provider_id), None)
    return frozenset(info.id for info in provider.models if info.deprecated) if provider is not None else frozenset()


def pricing_from_table(info: gp_types.ModelInfo) -> ModelPricing | None:
    price = _current_price(info)
    prompt, completion = _base(price.input_mtok), _base(price.output_mtok)
    if prompt is None or completion is None:
        return None
    return ModelPricing(
        prompt_mtok=prompt,
        completion_mtok=completion,
        cached_prompt_mtok=_base(price.cache_read_mtok),
        table=price,
        prompt_max_mtok=max(x for x in (_highest(price.input_mtok), _highest(price.cache_read_mtok),
                                         _highest(price.cache_write_mtok), prompt) if x is not None),
        completion_max_mtok=_highest(price.output_mtok),
        linear=linear_form(price),
    )


TABLE_NAMES = 4096  # names whose table entry (or its absence) is remembered, least recently used first out


def table_entry(model: str, genai_provider_id: str | None) -> gp_types.ModelInfo | None:
    """The price table's entry of `model` at a provider (its match clauses know dated and
    documented ids: `gpt-4-turbo-preview` is `gpt-4-turbo`), or None.

    Not through `find_provider_model`: genai-prices keeps every name it is asked about in dicts
    that never shrink (its provider cache is keyed by the model name, misses too), and the names
    asked here are clients' (model names resolved on demand) and upstreams' (GET /models)."""
    if genai_provider_id is None:
        return None
    return _table_entry(model.lower(), genai_provider_id)


@functools.lru_cache(maxsize=TABLE_NAMES)
def _table_entry(model: str, genai_provider_id: str) -> gp_types.ModelInfo | None:
    snapshot = get_snapshot()
    try:  # keyed by the provider alone: one entry per provider
        provider = snapshot.find_provider(None, genai_provider_id, None)
    except LookupError:
        return None
    may = may_match(genai_provider_id)
    if may is not None and not may.search(model):
        compact_dated = _compact_dated()
        normalized = compact_dated(model) if compact_dated is not None else None
        if normalized is not None and (normalized == model or not may.search(normalized)):
            return None  # no clause can match: a made-up name costs one compiled search
    return provider.find_model(model, all_providers=snapshot.providers)


def _compact_dated() -> Any:
    """genai-prices retries a compact dated id (`-20251211`) as `-2025-12-11` when it matches nothing."""
    from genai_prices import types as gp_types

    return getattr(gp_types, "_normalize_compact_dated_ref", None)


@functools.cache
def may_match(genai_provider_id: str) -> re.Pattern[str] | None:
    """One pattern that every name the provider's match clauses (and its fallback providers')
    take matches — some names it matches no clause takes (an `and` is checked by one of its
    parts): a name it does not match has no entry. None: a clause cannot be put in a pattern."""
    snapshot = get_snapshot()
    try:
        provider = snapshot.find_provider(None, genai_provider_id, None)
    except LookupError:
        return None
    providers = [provider] + [p for p in snapshot.providers if p.id in (provider.fallback_model_providers or ())]
    parts = [_clause_pattern(model.match) for p in providers for model in p.models]
    if not parts or any(part is None for part in parts):
        return None
    try:
        return re.compile("|".join(part for part in parts if part is not None))
    except re.error:
        return None


def _clause_pattern(clause: Any) -> str | None:
    """A regular expression every (lowercased) name `clause` matches matches, or None."""
    from genai_prices import types as gp_types

    if isinstance(clause, gp_types.ClauseEquals):
        return "^" + re.escape(clause.equals.lower()) + r"\Z"
    if isinstance(clause, gp_types.ClauseStartsWith):
        return "^" + re.escape(clause.starts_with.lower())
    if isinstance(clause, gp_types.ClauseEndsWith):
        return re.escape(clause.ends_with.lower()) + r"\Z"
    if isinstance(clause, gp_types.ClauseContains):
        return re.escape(clause.contains.lower())
    if isinstance(clause, gp_types.ClauseRegex):
        if re.search(r"\\[1-9]|\(\?P=|\(\?\(", clause.regex):
            return None  # a group reference: its numbers would shift in the joined pattern
        try:
            re.compile(f"(?:{clause.regex})")
        except re.error:
            return None
        return f"(?:{clause.regex})"
    if isinstance(clause, gp_types.ClauseOr):
        parts = [_clause_pattern(sub) for sub in clause.or_]
        if any(part is None for part in parts):
            return None
        return "(?:" + "|".join(part for part in parts if part is not None) + ")" if parts else "(?!)"
    if isinstance(clause, gp_types.ClauseAnd):  # all must match: any one of them is necessary
        return next((part for sub in clause.and_ if (part := _clause_pattern(sub)) is not None), None)
    return None


def input_only_pricing(model: str, genai_provider_id: str | None) -> ModelPricing | None:
    """The price of a model billed for its input only (an embedding model: the table has no output
    price), or None when the table does not list it."""
    info = table_entry(model, genai_provider_id)
    if info is None:
        return None
    price = _current_price(info)
    prompt = _base(price.input_mtok)
    if prompt is None:
        return None
    highest = _highest(price.input_mtok) or prompt
    return ModelPricing(prompt_mtok=prompt, completion_mtok=_base(price.output_mtok) or ZERO, table=price,
                        prompt_max_mtok=highest, completion_max_mtok=_highest(price.output_mtok) or ZERO,
                        linear=linear_form(price))


def lookup_pricing(model: str, genai_provider_id: str | None) -> ModelPricing | None:
    """Price of `model` at a provider from the table, or None when the table has no price."""
    info = table_entry(model, genai_provider_id)
    return None if info is None else pricing_from_table(info)


def pricing_override(prompt: Decimal, completion: Decimal, cached: Decimal | None, unit: str) -> ModelPricing:
    scale = Decimal(1000) if unit == "1k_tokens" else Decimal(1)
    return ModelPricing(
        prompt_mtok=prompt * scale,
        completion_mtok=completion * scale,
        cached_prompt_mtok=None if cached is None else cached * scale,
    )
