"""How deeply JSON data nests, counted without recursion (standard library only, so that the
pure policy engine may use it too).

JSON from a peer may nest 1000 levels (orjson's own limit; the standard library's parser runs
out of stack before that). Our recursive walks over it (JSON-LD terms, policies,
``json.dumps``) would end in a RecursionError, a 500, so each boundary refuses data deeper than
it can be; the limits live where the data is read.
"""

from __future__ import annotations

from typing import Any


def deeper_than(value: Any, limit: int) -> bool:
    """Whether JSON data nests objects and arrays more than ``limit`` levels deep (``{}`` is
    one level)."""
    level = [value] if isinstance(value, dict | list) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        level = [
            child
            for node in level
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, dict | list)
        ]
    return False
