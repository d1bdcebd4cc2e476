"""RFC 8785 (JSON Canonicalization Scheme) bytes: what signed agreements sign and what the
audit log hashes.

``rfc8785`` (pure Python) is the reference and handles everything; for the JSON our
agreements and audit entries are made of (strings, integers, booleans, null, arrays and
objects whose keys are below U+D800) orjson writes the same bytes about fifty times faster:
no whitespace, members sorted by key, the same string escapes. Sorting differs from RFC 8785
(UTF-16 code units) only for keys with characters from U+D800 up, and numbers only for
floats and integers beyond 2^53, so anything else goes to ``rfc8785``. A differential test
(tests/identity/test_canonical.py) holds the two to the same bytes.
"""

from __future__ import annotations

from typing import Any

import orjson
import rfc8785

_MAX_SAFE = 2**53 - 1  # integers JavaScript (and RFC 8785) represents exactly


def canonical_json(obj: Any) -> bytes:
    if _simple(obj):
        try:
            return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:  # a lone surrogate, say: the reference decides
            pass
    return rfc8785.dumps(obj)


def _simple(value: Any) -> bool:
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(-_MAX_SAFE <= value <= _MAX_SAFE)
    if kind is dict:
        return all(
            type(k) is str and (k.isascii() or max(k) < "\ud800") and _simple(v)
            for k, v in value.items()
        )
    if kind is list or kind is tuple:
        return all(_simple(v) for v in value)
    return False
