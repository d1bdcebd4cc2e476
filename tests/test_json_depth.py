"""The nesting check for JSON from outside (connector/json_depth.py)."""

from __future__ import annotations

from typing import Any

from connector.json_depth import deeper_than


def _nested(levels: int) -> Any:
    value: Any = 1
    for i in range(levels):
        value = [value] if i % 2 else {"k": value}
    return value


def test_deeper_than_counts_levels_without_recursion() -> None:
    assert not deeper_than(1, 0) and not deeper_than("x", 0)
    assert deeper_than({}, 0) and not deeper_than({}, 1)
    assert not deeper_than({"a": [1, {"b": []}]}, 4) and deeper_than({"a": [1, {"b": []}]}, 3)
    assert not deeper_than(_nested(40), 40) and deeper_than(_nested(41), 40)
    assert deeper_than(_nested(100_000), 40)  # far beyond the interpreter's recursion limit
