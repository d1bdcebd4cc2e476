"""Bytes of serialised datasets, cached per (dataset IRI, dct:modified, media type).

Building a graph and serialising it costs milliseconds; serving pre-built bytes costs
microseconds. A dataset's description changes only when its `modified` changes, so that is the
cache key: publishing a new version (with a new `modified`) invalidates it naturally.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Callable

CacheKey = tuple[str, dt.datetime | None, str]


class RenderCache:
    """A thread-safe LRU of rendered bytes (the web server may render from worker threads)."""

    def __init__(self, max_entries: int = 4096) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max = max_entries
        self._items: OrderedDict[CacheKey, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_or_render(self, key: CacheKey, render: Callable[[], bytes]) -> bytes:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return found
            self.misses += 1
        value = render()  # outside the lock: two threads may render the same key once each
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._max:
                self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
