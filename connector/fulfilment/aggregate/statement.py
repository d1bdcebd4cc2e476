"""A SQL statement with ``?`` parameters, and the same statement with its values as literals.

The portable form (what a hospital's own engine would prepare) keeps the parameters; DuckDB
gets the literal form, which it plans several times faster (the constants reach the Parquet
scans). Literals are written as standard SQL: strings single-quoted with quotes doubled,
finite numbers, ``DATE '...'`` and ``TIMESTAMP '...'``; anything else is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any


@dataclass
class Statement:
    """SQL text with ``?`` placeholders and their values in order."""

    text: str
    params: list[Any] = field(default_factory=list)

    def inline(self) -> str:
        """The text with every parameter written as a SQL literal (strings quoted, quotes
        doubled). DuckDB plans a statement with literals several times faster than one with
        parameters (it pushes the constants into the Parquet scans)."""
        values = iter(self.params)
        out = []
        quote: str | None = None
        for ch in self.text:
            if quote is not None:
                quote = None if ch == quote else quote
                out.append(ch)
            elif ch in "'\"":
                quote = ch
                out.append(ch)
            elif ch == "?":
                value = next(values, _END)
                if value is _END:
                    raise ValueError("fewer parameters than placeholders")
                out.append(_literal(value))
            else:
                out.append(ch)
        if next(values, _END) is not _END:
            raise ValueError("more parameters than placeholders")
        return "".join(out)


_END = object()


def _literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, bool) or value is None:
        raise TypeError(f"no SQL literal for {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError("a number that is not finite")
        return repr(value)
    if isinstance(value, datetime):
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    raise TypeError(f"no SQL literal for {type(value).__name__}")
