"""Policies in plain words for the catalog UI, from `connector.policy.describe_policy`.

The engine's phrase is one parenthesised conjunction ("(research only and ... and ...)"); people
read "Research only, results of 10 persons or more and members of the data space." better.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connector.policy import describe_policy


def _top_level_parts(text: str, separator: str) -> list[str]:
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
        elif depth == 0 and text.startswith(separator, i):
            parts.append(text[start:i])
            i += len(separator)
            start = i
            continue
        i += 1
    parts.append(text[start:])
    return parts


def _outer_parens(text: str) -> bool:
    if not (text.startswith("(") and text.endswith(")")):
        return False
    depth = 0
    for i, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and i < len(text) - 1:
            return False
    return True


def plain_policy(policy: Mapping[str, Any]) -> str:
    words = describe_policy(policy).strip()
    while _outer_parens(words):
        words = words[1:-1].strip()
    parts = [p.strip() for p in _top_level_parts(words, " and ") if p.strip()]
    if len(parts) > 1:
        words = ", ".join(parts[:-1]) + " and " + parts[-1]
    if not words:
        return "No conditions."
    return words[0].upper() + words[1:] + ("" if words.endswith(".") else ".")
