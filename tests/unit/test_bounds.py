"""Bounds without a server: USD written plainly, stored key policies brought within bounds, and
decoder messages that never grow with the input."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from parrotrouter.api.json import encode
from parrotrouter.auth.key_schema import MAX_RATE, MAX_USD, KeyCreate, check_money
from parrotrouter.auth.permissions import Policy
from parrotrouter.errors import InvalidRequest
from parrotrouter.protocol.chat import ChatCompletionRequest
from parrotrouter.protocol.validation import convert
from parrotrouter.store.schema import from_nanos, to_nanos, usd_text


@pytest.mark.parametrize(("nanos", "text"), [
    (100 * 10**9, "100"), (10**9, "1"), (5 * 10**8, "0.5"), (1000, "0.000001"), (100, "0.0000001"),
    (1, "0.000000001"), (-100 * 10**9, "-100"), (123_456_789_012, "123.456789012"), (0, "0"),
    (9_200_000_000 * 10**9, "9200000000"),
])
def test_usd_is_written_as_a_plain_decimal(nanos: int, text: str) -> None:
    usd = from_nanos(nanos)
    assert usd_text(usd) == text
    assert encode({"v": usd}) == b'{"v":' + text.encode() + b"}"
    assert "E" not in str(usd) or usd.adjusted() < -6  # str() itself is plain down to 1E-6
    assert to_nanos(usd) == nanos


def test_non_finite_amounts_have_no_numeral() -> None:
    assert encode([Decimal("NaN"), Decimal("Infinity")]) == b"[null,null]"


@pytest.mark.parametrize(("value", "signed", "ok"), [
    ("0", False, True), ("1000000000", False, True), ("1000000000.000000001", False, False),
    ("1e30", False, False), ("9.2e9", False, False), ("NaN", False, False), ("Infinity", False, False),
    ("-1", False, False), ("-1", True, True), ("-1000000000", True, True), ("-1000000001", True, False),
    ("0.000000001", False, True), ("0.0000000001", False, False), ("1.5000000000", False, True),
    ("1E+2", False, True),
])
def test_money_bounds(value: str, signed: bool, ok: bool) -> None:
    if ok:
        check_money(Decimal(value), "credits", signed=signed)
    else:
        with pytest.raises(InvalidRequest) as info:
            check_money(Decimal(value), "credits", signed=signed)
        assert info.value.param == "credits"


@pytest.mark.parametrize(("stored", "expected", "warned"), [
    ("1e30", MAX_USD, True), ("NaN", MAX_USD, True), ("Infinity", MAX_USD, True), ("-Infinity", Decimal(0), True),
    ("-5", Decimal(0), True), ("not a number", MAX_USD, True), ({"a": 1}, MAX_USD, True), (True, MAX_USD, True),
    ("x" * 1_000_000, MAX_USD, True), ("1E+2", Decimal(100), False), (0.5, Decimal("0.5"), False),
])
def test_a_stored_daily_cost_limit_is_brought_within_bounds(stored: Any, expected: Decimal, warned: bool) -> None:
    problems: list[str] = []
    policy = Policy.from_json({"max_cost_per_day": stored}, {}, problems)
    assert policy.max_cost_per_day == expected and "E" not in str(policy.max_cost_per_day)
    assert bool(problems) == warned and all(len(p) < 300 for p in problems)


@pytest.mark.parametrize(("stored", "expected", "warned"), [
    (60, 60, False), (None, None, False), (10**30, MAX_RATE, True), ("abc", MAX_RATE, True), (0, 1, True),
    (-5, 1, True), (5.0, 5, True), ([1], MAX_RATE, True), (True, MAX_RATE, True),
])
def test_stored_rate_limits_are_whole_numbers_within_bounds(stored: Any, expected: int | None, warned: bool) -> None:
    problems: list[str] = []
    policy = Policy.from_json({"max_requests_per_minute": stored}, {}, problems)
    assert policy.max_requests_per_minute == expected and bool(problems) == warned


def test_unreadable_stored_rules_admit_nothing() -> None:
    problems: list[str] = []
    policy = Policy.from_json({"models": "gpt-*", "features": "chat", "operations": "read"},
                              {"ip_whitelist": ["nope", 7], "domains": "example.com"}, problems)
    assert not policy.allows_model("gpt-4o") and policy.features == frozenset()
    assert not policy.can_read and not policy.can_write
    assert policy.ip_networks == () and policy.domains == ()
    assert len(problems) == 6, problems
    denied = Policy.from_json({"models": {"denied": "gpt-*"}}, {})
    assert not denied.allows_model("anything")
    nothing = Policy.from_json([], {}, problems)
    assert not nothing.can_read and not nothing.can_write and not nothing.allows_model("gpt-4o")


def test_readable_stored_rules_are_unchanged() -> None:
    problems: list[str] = []
    policy = Policy.from_json({"models": {"allowed": ["gpt-4o*"], "denied": ["gpt-4o-mini"]},
                               "features": ["chat"], "operations": ["read"], "max_cost_per_day": "2.5",
                               "max_tokens_per_minute": 1000},
                              {"ip_whitelist": ["10.0.0.0/8"], "domains": ["*.Example.com"]}, problems)
    assert problems == []
    assert policy.allows_model("gpt-4o") and not policy.allows_model("gpt-4o-mini")
    assert policy.can_read and not policy.can_write and policy.features == frozenset({"chat"})
    assert policy.max_cost_per_day == Decimal("2.5") and policy.max_tokens_per_minute == 1000
    assert policy.domains == ("*.example.com",) and len(policy.ip_networks or ()) == 1


BIG = "x" * 1_000_000


@pytest.mark.parametrize(("raw", "param"), [
    ({"model": "m", "messages": [{"role": BIG, "content": "hi"}]}, "messages[0].role"),
    ({"model": "m", "messages": [{"role": "user", "content": "hi"}], "tool_choice": BIG}, "tool_choice"),
    ({"model": "m", "messages": [{"role": "user", "content": "hi"}], "reasoning_effort": BIG}, "reasoning_effort"),
    ({"model": "m", "messages": [{"role": "user", "content": "hi"}], "metadata": {BIG: "v"}}, "metadata"),
    ({"model": "m", "messages": [{"role": "user", "content": "hi"}], "user": BIG}, "user"),
])
def test_decoder_messages_do_not_grow_with_the_input(raw: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        convert(raw, ChatCompletionRequest)
    assert info.value.param == param and len(info.value.message) < 400, info.value.message


def test_unknown_field_names_are_bounded_in_message_and_param() -> None:
    with pytest.raises(InvalidRequest) as info:
        convert({"name": "k", BIG: 1}, KeyCreate)
    assert len(info.value.message) < 600 and info.value.param is not None and len(info.value.param) < 200
