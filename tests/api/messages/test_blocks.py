"""The nesting check every Messages request body goes through (`blocks.check_depth`)."""

from __future__ import annotations

import tracemalloc

import orjson
import pytest

from parrotrouter.api.messages.blocks import check_depth
from parrotrouter.errors import InvalidRequest


def test_a_wide_body_is_checked_in_little_memory() -> None:
    """10 MB of a flat list (five million elements, what the body limit lets through): the check
    must not hold a record per element (it held 320 MB and blocked the event loop for seconds)."""
    wide = orjson.loads(b"[" + b",".join([b"0"] * 5_000_000) + b"]")
    tracemalloc.start()
    try:
        check_depth({"f": wide, "g": [{"h": wide}]}, "body", 128)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000


@pytest.mark.parametrize(("depth", "ok"), [(128, True), (129, False)])
def test_the_limit_is_exact(depth: int, ok: bool) -> None:
    value = orjson.loads(b"[" * (depth - 1) + b"{}" + b"]" * (depth - 1))  # `depth` containers deep
    if ok:
        check_depth(value, "body", 128)
    else:
        with pytest.raises(InvalidRequest, match="deeper than 128"):
            check_depth(value, "body", 128)
    check_depth({"a": [1, "x", None, {"b": {}}]}, "body", 4)  # four containers deep
    with pytest.raises(InvalidRequest):
        check_depth({"a": [1, "x", None, {"b": {}}]}, "body", 3)
