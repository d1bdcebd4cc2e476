"""``FhirSource`` over a FHIR R4 REST server (search paging, ``_summary=count``, Bulk ``$export``).

Searches use GET, or POST ``[type]/_search`` with a form body when the URL would be long (or
when asked), and follow ``link[rel=next]`` to the end. Every search is sent with ``Prefer:
handling=strict`` so a server refuses a parameter it does not know instead of silently ignoring
it (which would widen a cohort). Paging checks what it got: a next link to another origin or one
already visited, a duplicate resource, or a final number of resources that differs from the
first page's ``Bundle.total`` raises ``FhirSourceError`` instead of being reported complete.

``version()`` is derived per resource type from ``_summary=count`` and the newest
``meta.lastUpdated`` (``_sort=-_lastUpdated&_count=1``): an update moves the newest
``lastUpdated``, a create moves it and the count, a delete moves the count. ``meta.versionId``
alone would need every resource read; ``_history`` totals are not universally supported.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode, urljoin

from adapters.fhir.auth import FhirAuth
from adapters.fhir.bulk import BulkExporter, ExportLevel, ExportRequest, ExportResult
from adapters.fhir.http import FhirHttp, Timeouts
from adapters.fhir.retry import RetryPolicy
from connector.errors import FhirSourceError
from connector.ports import FhirResource

RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
STRICT = {"Prefer": "handling=strict"}
T = TypeVar("T")


class FhirRestSource:
    def __init__(
        self,
        base_url: str,
        *,
        auth: FhirAuth | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        page_size: int | None = None,
        max_get_url: int = 2000,
        concurrency: int = 8,
        export_deadline_seconds: float = 3600.0,
    ) -> None:
        self._http = FhirHttp(
            base_url, auth=auth, ssl_context=ssl_context, timeouts=timeouts, retry=retry
        )
        self.base_url = self._http.base_url
        self._page_size = page_size
        self._max_get_url = max_get_url
        self._concurrency = concurrency
        self._bulk = BulkExporter(self._http, deadline_seconds=export_deadline_seconds)

    # -- FhirSource -------------------------------------------------------------------------

    async def search(
        self,
        resource_type: str,
        params: Mapping[str, str] | None = None,
        *,
        post: bool | None = None,
    ) -> AsyncIterator[FhirResource]:
        """Every match exactly once; ``post`` forces (True) or forbids (False) ``_search``."""
        query = self._query(resource_type, params)
        if self._page_size and not any(k == "_count" for k, _ in query):
            query.append(("_count", str(self._page_size)))
        what = f"search {resource_type}?{urlencode(query)}"
        page = await self._first_page(resource_type, query, post)
        total = page.get("total") if isinstance(page.get("total"), int) else None
        seen: set[str] = set()
        visited: set[str] = set()
        while True:
            for resource in self._matches(page, what):
                key = f"{resource.get('resourceType')}/{resource.get('id')}"
                if key in seen:
                    raise FhirSourceError(
                        f"{what}: {key} returned twice while paging (data changed?)",
                        url=self.base_url,
                    )
                seen.add(key)
                yield resource
            next_url = _link(page, "next")
            if next_url is None:
                break
            next_url = urljoin(self.base_url + "/", next_url)
            if not self._http.same_origin(next_url):
                raise FhirSourceError(
                    f"{what}: next link {next_url} leaves the server's origin", url=self.base_url
                )
            if next_url in visited:
                raise FhirSourceError(f"{what}: next link loops to {next_url}", url=self.base_url)
            visited.add(next_url)
            page = self._bundle(await self._http.get_json(next_url), what)
        if total is not None and len(seen) != total:
            raise FhirSourceError(
                f"{what}: server reported {total} matches but paging returned {len(seen)}",
                url=self.base_url,
            )

    async def count(self, resource_type: str, params: Mapping[str, str] | None = None) -> int:
        query = [*self._query(resource_type, params), ("_summary", "count")]
        bundle = self._bundle(await self._get(resource_type, query), f"count {resource_type}")
        total = bundle.get("total")
        if not isinstance(total, int):
            raise FhirSourceError(
                f"count {resource_type}: _summary=count answered without Bundle.total",
                url=self.base_url,
            )
        return total

    async def resource_types(self) -> list[str]:
        counts = await self._type_counts()
        return sorted(t for t, n in counts.items() if n > 0)

    async def version(self) -> str:
        counts = await self._type_counts()
        present = sorted(t for t, n in counts.items() if n > 0)
        newest = await self._gather([self._newest(t) for t in present])
        digest = hashlib.sha256()
        for rtype, last in zip(present, newest, strict=True):
            digest.update(f"{rtype}\t{counts[rtype]}\t{last}\n".encode())
        return digest.hexdigest()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- Bulk Data --------------------------------------------------------------------------

    def export(
        self,
        *,
        level: ExportLevel = "system",
        group_id: str | None = None,
        types: Sequence[str] = (),
        since: datetime | str | None = None,
    ) -> AsyncIterator[FhirResource]:
        """Resources of a ``$export``, streamed from its NDJSON files."""
        return self._bulk.resources(ExportRequest(level, group_id, tuple(types), since))

    async def export_to_directory(
        self,
        directory: Path,
        *,
        level: ExportLevel = "system",
        group_id: str | None = None,
        types: Sequence[str] = (),
        since: datetime | str | None = None,
    ) -> ExportResult:
        """Run ``$export`` and write its files as ``Type.000.ndjson`` into ``directory``."""
        request = ExportRequest(level, group_id, tuple(types), since)
        return await self._bulk.to_directory(request, directory)

    # -- helpers ----------------------------------------------------------------------------

    def _query(self, resource_type: str, params: Mapping[str, str] | None) -> list[tuple[str, str]]:
        if not RESOURCE_TYPE.match(resource_type):
            raise FhirSourceError(f"not a FHIR resource type: {resource_type!r}", url=self.base_url)
        return list((params or {}).items())

    async def _first_page(
        self, resource_type: str, query: list[tuple[str, str]], post: bool | None
    ) -> dict[str, Any]:
        url = f"{self.base_url}/{resource_type}"
        encoded = urlencode(query)
        if post is None:
            post = len(url) + 1 + len(encoded) > self._max_get_url
        what = f"search {resource_type}"
        if post:
            doc = await self._http.post_form(f"{url}/_search", query, headers=STRICT)
            return self._bundle(doc, what)
        return self._bundle(await self._get(resource_type, query), what)

    async def _get(self, resource_type: str, query: list[tuple[str, str]]) -> Any:
        url = f"{self.base_url}/{resource_type}"
        if query:
            url += "?" + urlencode(query)
        return await self._http.get_json(url, headers=STRICT)

    def _bundle(self, doc: Any, what: str) -> dict[str, Any]:
        if not isinstance(doc, dict) or doc.get("resourceType") != "Bundle":
            raise FhirSourceError(f"{what}: the server answered no Bundle", url=self.base_url)
        return doc

    def _matches(self, bundle: dict[str, Any], what: str) -> list[FhirResource]:
        out: list[FhirResource] = []
        for entry in bundle.get("entry") or []:
            mode = (entry.get("search") or {}).get("mode", "match")
            resource = entry.get("resource")
            if not isinstance(resource, dict):
                raise FhirSourceError(f"{what}: a Bundle entry has no resource", url=self.base_url)
            if mode == "outcome":
                _raise_on_errors(resource, what, self.base_url)
            elif mode == "match":
                out.append(resource)
        return out

    async def _type_counts(self) -> dict[str, int]:
        capability = await self._http.get_json(f"{self.base_url}/metadata")
        types = _searchable_types(capability)
        if not types:
            raise FhirSourceError(
                "CapabilityStatement lists no searchable resource types", url=self.base_url
            )
        counts = await self._gather([self.count(t) for t in types])
        return dict(zip(types, counts, strict=True))

    async def _newest(self, resource_type: str) -> str:
        query = [("_sort", "-_lastUpdated"), ("_count", "1"), ("_elements", "id")]
        bundle = self._bundle(await self._get(resource_type, query), f"version {resource_type}")
        for resource in self._matches(bundle, f"version {resource_type}"):
            return f"{(resource.get('meta') or {}).get('lastUpdated', '')}|{resource.get('id')}"
        return ""

    async def _gather(self, jobs: list[Awaitable[T]]) -> list[T]:
        limit = asyncio.Semaphore(self._concurrency)

        async def one(job: Awaitable[T]) -> T:
            async with limit:
                return await job

        return list(await asyncio.gather(*(one(j) for j in jobs)))


def _link(bundle: dict[str, Any], relation: str) -> str | None:
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == relation and link.get("url"):
            return str(link["url"])
    return None


def _raise_on_errors(outcome: dict[str, Any], what: str, base_url: str) -> None:
    for issue in outcome.get("issue") or []:
        if issue.get("severity") in ("error", "fatal"):
            text = issue.get("diagnostics") or issue.get("code")
            raise FhirSourceError(f"{what}: {text}", url=base_url)


def _searchable_types(capability: Any) -> list[str]:
    types: list[str] = []
    if not isinstance(capability, dict):
        return types
    for rest in capability.get("rest") or []:
        if rest.get("mode", "server") != "server":
            continue
        for resource in rest.get("resource") or []:
            interactions = {i.get("code") for i in resource.get("interaction") or []}
            rtype = resource.get("type")
            searchable = "search-type" in interactions
            if isinstance(rtype, str) and RESOURCE_TYPE.match(rtype) and searchable:
                types.append(rtype)
    return sorted(set(types))
