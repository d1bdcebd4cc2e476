"""``canonical_json`` writes exactly what the RFC 8785 reference implementation writes, on
its fast path (orjson) and off it, for any JSON value."""

from __future__ import annotations

from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.canonical import _simple, canonical_json

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    # control characters, DEL, line separators, escapes, and BMP/non-BMP characters around
    # the surrogate range, where UTF-16 and code point order differ
    | st.text(
        alphabet='\x00\x01\x08\x09\x0a\x0c\x0d\x1f\x7f"\\/\u2028\u2029\ud7ff\ue000\uffff\U00010000\U0001f600'
    )
)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(alphabet="az\x00\x7f\u00e9\ud7ff\ue000\uffff\U00010000\U0001f600", max_size=4)
            | st.text(max_size=4),
            inner,
            max_size=4,
        )
    ),
    max_leaves=20,
)


def _reference(value: Any) -> bytes | type[Exception]:
    try:
        return bytes(rfc8785.dumps(value))
    except Exception as exc:  # the reference refuses it: so must we
        return type(exc)


@settings(max_examples=2000, deadline=None)
@given(_json)
def test_the_same_bytes_as_the_reference(value: Any) -> None:
    expected = _reference(value)
    if isinstance(expected, bytes):
        assert canonical_json(value) == expected
    else:
        with pytest.raises(expected):
            canonical_json(value)


def test_what_our_agreements_and_audit_entries_hold_takes_the_fast_path() -> None:
    agreement = {
        "@id": "urn:uuid:1",
        "@type": "Agreement",
        "target": "paediatric-asthma",
        "assigner": "did:web:h.example",
        "timestamp": "2026-11-28T19:07:00.123456Z",
        "permission": [{"action": "use", "constraint": [{"rightOperand": True}]}],
    }
    assert _simple(agreement) and _simple({"seq": 2**53 - 1, "purpose": None})
    # and what it cannot be sure of does not
    assert not _simple({"epsilon": 0.5})
    assert not _simple({"\ue000": 1})
    assert not _simple({"n": 2**53})
