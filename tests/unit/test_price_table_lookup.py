"""Looking a name up in the price table (`pricing.table_entry`): the same answers as genai-prices'
own scan of the match clauses, but a name no clause can match is turned away by one compiled
pattern per provider (made-up model names cost microseconds, not a scan of every clause)."""

from __future__ import annotations

import random
import string

import pytest
from genai_prices import types as gp_types
from genai_prices.data_snapshot import get_snapshot

from parrotrouter import pricing
from parrotrouter.providers.presets import all_presets

PROVIDERS = sorted({p.prices_id for p in all_presets().values() if p.prices_id} | {"openrouter"})


def _literals(clause: gp_types.MatchLogic) -> list[str]:
    """The texts a clause names (names made from them are near misses and near hits)."""
    for field in ("equals", "starts_with", "ends_with", "contains"):
        if isinstance(text := getattr(clause, field, None), str):
            return [text]
    return [text for sub in (*getattr(clause, "or_", ()), *getattr(clause, "and_", ())) for text in _literals(sub)]


def _names(provider: gp_types.Provider, rng: random.Random) -> list[str]:
    names = []
    for model in provider.models:
        for text in {model.id, *_literals(model.match)}:
            names += [text, text.upper(), f"{text}-2024-08-06", f"{text}-20250514", f"x{text}", f"{text}-latest",
                      f"openai/{text}", text[:-1], text + rng.choice(string.ascii_lowercase)]
    return names


@pytest.mark.parametrize("provider_id", PROVIDERS)
def test_the_same_entries_as_the_tables_own_scan(provider_id: str) -> None:
    snapshot = get_snapshot()
    provider = snapshot.find_provider(None, provider_id, None)
    rng = random.Random(provider_id)
    for name in _names(provider, rng):
        expected = provider.find_model(name, all_providers=snapshot.providers)
        assert pricing.table_entry(name, provider_id) is expected, name


@pytest.mark.parametrize("provider_id", ["openai", "anthropic", "openrouter", "google", "aws"])
def test_made_up_names_are_turned_away_cheaply(provider_id: str) -> None:
    assert pricing.may_match(provider_id) is not None  # the provider's clauses compile to one pattern
    rng = random.Random(16)
    names = ["".join(rng.choice(string.ascii_lowercase + string.digits + "-./") for _ in range(32))
             for _ in range(5_000)]
    # The clause-by-clause scan (about 0.1 ms a name and more) is what the compiled pattern spares:
    # count the names that still reach it, instead of timing them.
    provider = get_snapshot().find_provider(None, provider_id, None)
    scanned: list[str] = []
    scan = type(provider).find_model

    def counted(self: object, model: str, **kwargs: object) -> object:
        scanned.append(model)
        return scan(self, model, **kwargs)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(type(provider), "find_model", counted)
        pricing._table_entry.cache_clear()
        for name in names:
            assert pricing.table_entry(name, provider_id) is None
    assert len(scanned) <= len(names) // 100, scanned[:5]  # nearly every made-up name: one search
