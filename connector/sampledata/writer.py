"""Bulk Data style NDJSON output: ``<Type>.000.ndjson``, ``<Type>.001.ndjson`` ...

One JSON object per line (orjson, UTF-8, ``\\n`` line ends), a new file every
``lines_per_file`` resources of a type, as a Bulk ``$export`` server writes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

import orjson

from connector.files import open_private

_OPTS = orjson.OPT_APPEND_NEWLINE


class NdjsonWriter:
    """Writes resources of any type, each type to its own numbered files."""

    def __init__(self, out_dir: Path, *, lines_per_file: int) -> None:
        if lines_per_file < 1:
            raise ValueError("lines_per_file must be at least 1")
        self._dir = out_dir
        self._limit = lines_per_file
        self._files: dict[str, IO[bytes]] = {}
        self._lines: dict[str, int] = {}
        self._parts: dict[str, int] = {}
        self.counts: dict[str, int] = {}

    def write(self, resource: dict[str, Any]) -> None:
        rtype: str = resource["resourceType"]
        f = self._files.get(rtype)
        if f is None or self._lines[rtype] >= self._limit:
            f = self._open_next(rtype)
        f.write(orjson.dumps(resource, option=_OPTS))
        self._lines[rtype] += 1
        self.counts[rtype] = self.counts.get(rtype, 0) + 1

    def _open_next(self, rtype: str) -> IO[bytes]:
        old = self._files.get(rtype)
        if old is not None:
            old.close()
        part = self._parts.get(rtype, -1) + 1
        self._parts[rtype] = part
        f = open_private(self._dir / f"{rtype}.{part:03d}.ndjson", "wb", buffering=1 << 20)
        self._files[rtype] = f
        self._lines[rtype] = 0
        return f

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()

    def __enter__(self) -> NdjsonWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
