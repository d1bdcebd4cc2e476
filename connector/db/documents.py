"""JSON documents in store columns, written and read fast (orjson)."""

from __future__ import annotations

import json
from typing import Any

import orjson

# What json.dumps(separators=(",", ":"), default=str) wrote, several times faster: datetimes
# and dataclasses (none expected) still go through str(), keys that are not strings are
# written as strings.
_OPTIONS = (
    orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_NON_STR_KEYS
)


def dumps(value: Any) -> str:
    return orjson.dumps(value, default=str, option=_OPTIONS).decode()


def loads(text: str) -> Any:
    """A stored document. orjson reads what we write several times faster than ``json``;
    text it refuses (``NaN`` from an older writer, integers beyond 64 bits) goes to ``json``."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
