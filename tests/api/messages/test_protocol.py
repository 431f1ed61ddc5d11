"""The client's headers an Anthropic deployment gets (`protocol.native_headers`)."""

from __future__ import annotations

from multidict import CIMultiDict

from parrotrouter.api.messages.protocol import MAX_HEADER, native_headers


def test_a_header_sent_twice_goes_on_whole() -> None:
    headers = CIMultiDict([("Anthropic-Beta", "a-1"), ("anthropic-beta", "b-2"), ("anthropic-version", "2023-06-01"),
                           ("x-api-key", "pr-secret"), ("authorization", "Bearer pr-secret")])
    assert native_headers(headers) == {"anthropic-beta": "a-1,b-2", "anthropic-version": "2023-06-01"}


def test_long_or_unprintable_values_stay_behind() -> None:
    many = CIMultiDict([("anthropic-beta", "b" * 1000)] * 3)
    assert native_headers(many) == {}
    assert native_headers(CIMultiDict({"anthropic-beta": "b" * MAX_HEADER})) == {"anthropic-beta": "b" * MAX_HEADER}
    assert native_headers(CIMultiDict({"anthropic-version": "2023\udce9"})) == {}
