"""Checking the free-form parts of a Messages request one by one: content blocks by their type
(a type this gateway does not know is left to Anthropic), and the nesting of free-form JSON."""

from __future__ import annotations

from typing import Any, TypeVar

from ...errors import InvalidRequest, echo
from ...protocol.validation import convert
from .protocol import BLOCK_TYPES, MAX_DEPTH, KnownBlock

T = TypeVar("T")


def checked(raw: Any, type_: type[T], where: str) -> T:
    """`raw` as `type_`, or a 400 naming the param below `where`."""
    if not isinstance(raw, dict):
        raise InvalidRequest(f"Invalid value for '{where}': expected an object.", param=where)
    try:
        return convert(raw, type_)
    except InvalidRequest as err:
        param = f"{where}.{err.param}" if err.param else where
        raise InvalidRequest(f"{where}: {err.message}", param=param) from None


def block(raw: Any, where: str) -> KnownBlock | None:
    """A content block as its struct; None for a type this gateway does not translate."""
    if not isinstance(raw, dict):
        raise InvalidRequest(f"Invalid value for '{where}': a content block is an object.", param=where)
    kind = raw.get("type")
    if not isinstance(kind, str):
        raise InvalidRequest(f"Missing required parameter '{where}.type'.", param=f"{where}.type")
    struct = BLOCK_TYPES.get(kind)
    if struct is None:
        if len(kind) > 128:
            raise InvalidRequest(f"Unknown content block type '{echo(kind)}'.", param=f"{where}.type")
        return None
    found: KnownBlock = checked(raw, struct, where)
    return found


_CONTAINERS = (dict, list)  # decoded JSON's: compared by type, twice as fast as isinstance on millions


def check_depth(value: Any, where: str, limit: int = MAX_DEPTH) -> None:
    """400 when free-form JSON nests deeper than `limit` (no recursion: any depth is safe). Level
    by level, holding only the containers of one level: a body of millions of scalars costs no
    record per scalar."""
    level: list[Any] = [value] if type(value) in _CONTAINERS else []
    depth = 1
    while level:
        if depth > limit:
            raise InvalidRequest(f"'{where}' nests deeper than {limit} levels.", param=where)
        below: list[Any] = []
        for item in level:
            below += [child for child in (item.values() if type(item) is dict else item)
                      if type(child) in _CONTAINERS]
        level = below
        depth += 1
