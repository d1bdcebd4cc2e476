"""Ports: the interfaces the connector needs from the outside world.

``adapters/`` implements them; only the composition root (``connector.composition``) wires an
implementation in. Each port has one contract test suite run against every implementation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any, Protocol

FhirResource = dict[str, Any]


class Clock(Protocol):
    """Current time, injectable for tests. Always timezone-aware UTC."""

    def now(self) -> datetime: ...


class FhirSource(Protocol):
    """A hospital's FHIR R4 data, read-only.

    ``search`` yields every matching resource exactly once (following paging to the end) as
    parsed JSON dicts; it raises ``connector.errors.FhirSourceError`` (naming the server or
    file and the request) when the source fails after retries; a partial read is never
    reported as complete. Supported parameters depend on the source: the REST source passes
    them to the server; the file source supports ``_id`` and ``patient``/``subject``
    references, and raises ``FhirSourceError`` for others instead of ignoring them.
    """

    def search(
        self, resource_type: str, params: Mapping[str, str] | None = None
    ) -> AsyncIterator[FhirResource]: ...

    async def count(self, resource_type: str, params: Mapping[str, str] | None = None) -> int:
        """Number of matching resources (``_summary=count`` on a REST server)."""
        ...

    async def resource_types(self) -> list[str]:
        """Resource types the source holds data for."""
        ...

    async def version(self) -> str:
        """An opaque token that changes whenever the data changes (cache key for fitted
        models and cached noise)."""
        ...

    async def aclose(self) -> None: ...


class ReplayGuard(Protocol):
    """Remembers token ids (``jti``) until they expire; backed by the store."""

    async def remember(self, jti: str, expires_at: datetime) -> bool:
        """Record ``jti``; return False if it was already recorded (a replay)."""
        ...
