"""Costs: the linear shortcut gives the genai-prices table's own answer; integer and Decimal
arithmetic agree exactly."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest
from genai_prices.data_snapshot import get_snapshot

from parrotrouter.accounting.usage import UsageRecord
from parrotrouter.pricing import TokenUsage, _current_price, _table_cost, linear_form, lookup_pricing, pricing_override
from parrotrouter.providers.anthropic import usage_of


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
