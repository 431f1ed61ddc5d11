"""Costs: the linear shortcut gives the genai-prices table's own answer; integer and Decimal
arithmetic agree exactly."""

from __future__ import annotations

import random
from decimal import ROUND_HALF_EVEN, Decimal

import orjson
import pytest
from genai_prices.data_snapshot import get_snapshot

from parrotrouter.accounting.credits import ceil_nanos
from parrotrouter.accounting.usage import UsageRecord, nanos_text
from parrotrouter.pricing import TokenUsage, _current_price, _table_cost, linear_form, lookup_pricing, pricing_override
from parrotrouter.providers.anthropic import usage_of
from parrotrouter.store.schema import NANO, from_nanos, to_nanos, usd_text


def _usages(rng: random.Random) -> list[TokenUsage]:
    out = [TokenUsage(), TokenUsage(prompt_tokens=1), TokenUsage(completion_tokens=1),
           TokenUsage(prompt_tokens=1234, completion_tokens=567, cached_tokens=1234),
           TokenUsage(prompt_tokens=10, cached_tokens=4, cache_write_tokens=6),
           TokenUsage(prompt_tokens=300_000, completion_tokens=9000, cache_write_tokens=250_000),
           TokenUsage(prompt_tokens=300_000, completion_tokens=9000, cached_tokens=299_000)]
    for _ in range(20):
        prompt = rng.randrange(0, 150_000)
        cached = rng.randrange(0, prompt + 1)
        write = rng.randrange(0, prompt - cached + 1) if rng.random() < 0.3 else 0
        out.append(TokenUsage(prompt_tokens=prompt, completion_tokens=rng.randrange(0, 20_000),
                              cached_tokens=cached, cache_write_tokens=write))
    return out


def test_linear_prices_equal_the_tables_own_calculation() -> None:
    rng = random.Random(7)
    usages = _usages(rng)
    checked = 0
    for provider in get_snapshot().providers:
        for info in provider.models:
            table = _current_price(info)
            lin = linear_form(table)
            if lin is None:
                continue
            pricing = lookup_pricing(info.id, provider.id)
            if pricing is None or pricing.linear is None:
                continue
            for usage in usages:
                assert pricing.cost(usage) == _table_cost(table, usage), (provider.id, info.id, usage)
            checked += 1
    assert checked > 200  # the shortcut covers most of the table


def test_tiered_prices_use_the_table() -> None:
    tiered = [(p.id, m) for p in get_snapshot().providers for m in p.models
              if linear_form(_current_price(m)) is None and lookup_pricing(m.id, p.id) is not None]
    assert tiered, "the snapshot has tiered prices (long-context surcharges)"
    provider_id, info = tiered[0]
    pricing = lookup_pricing(info.id, provider_id)
    assert pricing is not None
    usage = TokenUsage(prompt_tokens=300_000, completion_tokens=10)
    assert pricing.linear is None
    assert pricing.cost(usage) == _table_cost(_current_price(info), usage)


def test_cached_tokens_cost_less_on_a_table_price() -> None:
    pricing = lookup_pricing("gpt-4o-mini", "openai")
    assert pricing is not None and pricing.linear is not None
    full = pricing.cost(TokenUsage(prompt_tokens=1000, completion_tokens=100))
    cached = pricing.cost(TokenUsage(prompt_tokens=1000, completion_tokens=100, cached_tokens=1000))
    assert full == Decimal("0.000210")  # 1000 x $0.15/M + 100 x $0.60/M
    assert cached == Decimal("0.000135")  # 1000 x $0.075/M + 100 x $0.60/M


def test_anthropic_cache_writes_are_priced_as_writes() -> None:
    """Anthropic bills cache writes above the input price: the usage the adapter reports reaches
    the cost with the writes apart."""
    pricing = lookup_pricing("claude-3-5-haiku-latest", "anthropic")
    assert pricing is not None and pricing.linear is not None
    rec = UsageRecord(id="gen-1", endpoint="chat", requested_model="claude-3-5-haiku-latest", pricing=pricing)
    rec.observe_usage(usage_of({"input_tokens": 5, "output_tokens": 4, "cache_read_input_tokens": 100,
                                "cache_creation_input_tokens": 20}))
    rec.finalize()
    table = pricing.table
    assert table is not None
    expected = (5 * table.input_mtok + 100 * table.cache_read_mtok + 20 * table.cache_write_mtok
                + 4 * table.output_mtok) / 1_000_000
    assert table.cache_write_mtok > table.input_mtok
    assert rec.cost == expected


@pytest.mark.parametrize(("prompt", "completion", "cached", "integer"), [
    ("0.15", "0.6", None, True),  # whole pico-dollars per token: integer arithmetic
    ("2.5", "10", "1.25", True),
    ("0.0000001", "0.0000003", None, False),  # finer than a pico-dollar per token: Decimal
])
def test_config_prices_cost_exactly(prompt: str, completion: str, cached: str | None, integer: bool) -> None:
    pricing = pricing_override(Decimal(prompt), Decimal(completion), None if cached is None else Decimal(cached),
                               "1m_tokens")
    assert (pricing.rates is not None) is integer
    cached_price = Decimal(cached or prompt)
    for p, c, k, w in [(0, 0, 0, 0), (1, 1, 0, 0), (1000, 250, 400, 0), (777, 3, 900, 0), (50, 5, 10, 20)]:
        read = min(k, p)
        expected = ((p - read) * Decimal(prompt) + read * cached_price + c * Decimal(completion)) / 1_000_000
        assert pricing.cost(TokenUsage(prompt_tokens=p, completion_tokens=c, cached_tokens=k,
                                       cache_write_tokens=w)) == expected


def test_max_cost_bounds_every_table_cost() -> None:
    """The reservation never falls short of the cost: cache writes dearer than input (Anthropic),
    long-context tiers and per-request prices are all inside the bound."""
    rng = random.Random(11)
    usages = _usages(rng)
    checked = 0
    for provider in get_snapshot().providers:
        for info in provider.models:
            pricing = lookup_pricing(info.id, provider.id)
            if pricing is None:
                continue
            for usage in usages:
                bound = pricing.max_cost(usage.prompt_tokens, usage.completion_tokens)
                assert pricing.cost(usage) <= bound, (provider.id, info.id, usage)
            checked += 1
    assert checked > 200


def test_integer_nanos_equal_the_decimal_amounts() -> None:
    """The request path books whole nano-dollars in integers: the reservation (`max_cost_nanos`,
    rounded up), the ledger's cost (`cost_nanos`, half-even) and the answer's `usage.cost` text
    are exactly the Decimal computations', for every price of the table and config prices finer
    than a pico-dollar."""
    rng = random.Random(5)
    usages = _usages(rng)
    prices = [p for p in (lookup_pricing(info.id, provider.id) for provider in get_snapshot().providers
                          for info in provider.models) if p is not None]
    prices.append(pricing_override(Decimal("0.0000001"), Decimal("0.0000003"), None, "1m_tokens"))
    prices.append(pricing_override(Decimal("0.15"), Decimal("0.6"), Decimal("0.075"), "1m_tokens"))
    assert len(prices) > 200
    for pricing in prices:
        for usage in usages[:12]:
            bound = pricing.max_cost(usage.prompt_tokens, usage.completion_tokens)
            assert pricing.max_cost_nanos(usage.prompt_tokens, usage.completion_tokens) == to_nanos(
                ceil_nanos(bound)), pricing
            rec = UsageRecord(id="gen-1", endpoint="chat", requested_model="m", pricing=pricing,
                              prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
                              cached_tokens=usage.cached_tokens, cache_write_tokens=usage.cache_write_tokens)
            cost = pricing.cost(usage) if usage.prompt_tokens or usage.completion_tokens else Decimal(0)
            assert rec.price() == cost
            assert rec.cost_nanos() == to_nanos(cost)
            assert bytes(orjson.dumps(rec.answer_cost())).decode() == usd_text(cost.quantize(NANO, ROUND_HALF_EVEN))
    for nanos in (0, 1, 10, 999_999_999, 1_000_000_000, 1_500_000_000, 123_456_789_012, -5):
        assert nanos_text(nanos) == usd_text(from_nanos(nanos))
