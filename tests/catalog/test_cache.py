"""The render cache: keyed by dct:modified, bounded."""

from __future__ import annotations

import datetime as dt

import pytest

from catalog.cache import RenderCache

T1 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
T2 = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)


def test_renders_once_per_version() -> None:
    cache = RenderCache()
    calls: list[int] = []

    def render() -> bytes:
        calls.append(1)
        return b"x" * len(calls)

    assert cache.get_or_render(("iri", T1, "text/turtle"), render) == b"x"
    assert cache.get_or_render(("iri", T1, "text/turtle"), render) == b"x"
    assert cache.get_or_render(("iri", T2, "text/turtle"), render) == b"xx"  # new version
    assert cache.get_or_render(("iri", T2, "application/ld+json"), render) == b"xxx"
    assert (cache.hits, cache.misses) == (1, 3)


def test_least_recently_used_is_evicted() -> None:
    cache = RenderCache(max_entries=2)
    for name in ("a", "b", "a", "c"):
        cache.get_or_render((name, None, "t"), name.encode)
    assert len(cache) == 2
    cache.get_or_render(("b", None, "t"), lambda: b"again")
    assert cache.misses == 4  # "b" was evicted, "a" was kept because it was used again


def test_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RenderCache(max_entries=0)
