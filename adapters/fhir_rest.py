"""``FhirSource`` over a FHIR R4 REST server (search paging, ``_summary=count``, Bulk ``$export``).

Searches use GET, or POST ``[type]/_search`` with a form body when the URL would be long (or
when asked), and follow ``link[rel=next]`` to the end. Every search is sent with ``Prefer:
handling=strict`` so a server refuses a parameter it does not know instead of silently ignoring
it (which would widen a cohort). Paging checks what it got: a next link to another origin or one
already visited, a duplicate resource, or a final number of resources that differs from the
first page's ``Bundle.total`` raises ``FhirSourceError`` instead of being reported complete.

Every search asks for pages of ``page_size`` resources (``_count``, unless the search names its
own): the server's default (often 20) makes a large scan mostly round trips. Every JSON answer
is checked (``adapters.fhir.shapes``) before it is used: a malformed Bundle, an answer of another
resource type than the one searched for, or a broken CapabilityStatement raises
``FhirSourceError`` naming the server's fault.

``resource_types()`` counts (``_summary=count``) every type the CapabilityStatement declares
searchable and every other FHIR R4 type: servers store types they do not declare (sekmet stores
Goal and CareTeam, for example), and a type left out would make ``version()`` blind to its
changes. A type the server refuses to search (4xx) is remembered and not asked about again.

``version()`` is derived per resource type from ``_summary=count`` and the newest
``meta.lastUpdated`` (``_sort=-_lastUpdated&_count=1``): an update moves the newest
``lastUpdated``, a create moves it and the count, a delete moves the count. ``meta.versionId``
alone would need every resource read; ``_history`` totals are not universally supported.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode, urljoin

from adapters.fhir.auth import FhirAuth
from adapters.fhir.bulk import BulkExporter, ExportLevel, ExportRequest, ExportResult
from adapters.fhir.http import FhirHttp, Timeouts
from adapters.fhir.params import count_param
from adapters.fhir.r4 import R4_RESOURCE_TYPES
from adapters.fhir.retry import RetryPolicy
from adapters.fhir.shapes import RESOURCE_TYPE, newest, search_page, searchable_types
from connector.errors import FhirSourceError
from connector.ports import FhirResource

STRICT = {"Prefer": "handling=strict"}
DEFAULT_PAGE_SIZE = 1000
# What a server answers when asked about a type it does not hold or serve: not an error for a
# type it never declared (404 unknown type, 400/422 not searchable, 403 out of our scopes ...).
UNSEARCHABLE = (400, 403, 404, 405, 410, 422, 501)
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
        page_size: int | None = DEFAULT_PAGE_SIZE,
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
        self._unsearchable: set[str] = set()  # undeclared types the server refused to search

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
        if any(k == "_summary" and v.strip() == "count" for k, v in query):
            raise FhirSourceError(
                f"search {resource_type}: _summary=count returns no resources; use count()",
                url=self.base_url,
            )
        if self._page_size and not any(k == "_count" for k, _ in query):
            query.append(("_count", str(self._page_size)))
        what = f"search {resource_type}?{urlencode(query)}"
        includes = any(k.split(":")[0] in ("_include", "_revinclude") for k, _ in query)
        doc = await self._first_page(resource_type, query, post)
        page = search_page(doc, resource_type, what, self.base_url, includes=includes)
        total = page.total
        seen: set[str] = set()
        visited: set[str] = set()
        while True:
            for resource in page.matches:
                key = f"{resource_type}/{resource['id']}"
                if key in seen:
                    raise FhirSourceError(
                        f"{what}: {key} returned twice while paging (data changed?)",
                        url=self.base_url,
                    )
                seen.add(key)
                yield resource
            if page.next_url is None:
                break
            next_url = urljoin(self.base_url + "/", page.next_url)
            if not self._http.same_origin(next_url):
                raise FhirSourceError(
                    f"{what}: next link {next_url} leaves the server's origin", url=self.base_url
                )
            if next_url in visited:
                raise FhirSourceError(f"{what}: next link loops to {next_url}", url=self.base_url)
            visited.add(next_url)
            doc = await self._http.get_json(next_url)
            page = search_page(doc, resource_type, what, self.base_url, includes=includes)
        if total is not None and len(seen) != total:
            raise FhirSourceError(
                f"{what}: server reported {total} matches but paging returned {len(seen)}",
                url=self.base_url,
            )

    async def count(self, resource_type: str, params: Mapping[str, str] | None = None) -> int:
        query = [*self._query(resource_type, params), ("_summary", "count")]
        return self._total(await self._get(resource_type, query), resource_type)

    async def resource_types(self) -> list[str]:
        """Every type with at least one resource, declared by the server or not."""
        counts = await self._type_counts()
        return sorted(t for t, n in counts.items() if n > 0)

    async def version(self) -> str:
        counts = await self._type_counts()
        present = sorted(t for t, n in counts.items() if n > 0)
        latest = await self._gather([partial(self._newest, t) for t in present])
        digest = hashlib.sha256()
        for rtype, last in zip(present, latest, strict=True):
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
        params = params or {}
        count_param(resource_type, params, self.base_url)
        return list(params.items())

    async def _first_page(
        self, resource_type: str, query: list[tuple[str, str]], post: bool | None
    ) -> Any:
        url = f"{self.base_url}/{resource_type}"
        encoded = urlencode(query)
        if post is None:
            post = len(url) + 1 + len(encoded) > self._max_get_url
        if post:
            return await self._http.post_form(f"{url}/_search", query, headers=STRICT)
        return await self._get(resource_type, query)

    def _url(self, resource_type: str, query: list[tuple[str, str]]) -> str:
        url = f"{self.base_url}/{resource_type}"
        return url + "?" + urlencode(query) if query else url

    async def _get(self, resource_type: str, query: list[tuple[str, str]]) -> Any:
        return await self._http.get_json(self._url(resource_type, query), headers=STRICT)

    def _total(self, doc: Any, resource_type: str) -> int:
        """``Bundle.total`` of a ``_summary=count`` answer (its outcomes checked too)."""
        what = f"count {resource_type}"
        total = search_page(doc, resource_type, what, self.base_url).total
        if total is None:
            raise FhirSourceError(
                f"{what}: _summary=count answered without Bundle.total", url=self.base_url
            )
        return total

    async def _type_counts(self) -> dict[str, int]:
        capability = await self._http.get_json(f"{self.base_url}/metadata")
        declared = searchable_types(capability, self.base_url)
        undeclared = [
            t for t in R4_RESOURCE_TYPES if t not in declared and t not in self._unsearchable
        ]
        counts = await self._gather(
            [partial(self.count, t) for t in declared]
            + [partial(self._probe, t) for t in undeclared]
        )
        found = dict(zip(declared + undeclared, counts, strict=True))
        return {t: n for t, n in found.items() if n is not None}

    async def _probe(self, resource_type: str) -> int | None:
        """Count of a type the server did not declare; None (and remembered) if refused."""
        query = [("_summary", "count")]
        url = self._url(resource_type, query)
        result = await self._http.request("GET", url, headers=STRICT, ok=(200, *UNSEARCHABLE))
        if result.status != 200:
            self._unsearchable.add(resource_type)
            return None
        return self._total(self._http.parse_json(result, "GET", url), resource_type)

    async def _newest(self, resource_type: str) -> str:
        query = [("_sort", "-_lastUpdated"), ("_count", "1"), ("_elements", "id")]
        what = f"version {resource_type}"
        doc = await self._get(resource_type, query)
        for resource in search_page(doc, resource_type, what, self.base_url).matches:
            return f"{newest(resource, what, self.base_url)}|{resource['id']}"
        return ""

    async def _gather(self, jobs: list[Callable[[], Awaitable[T]]]) -> list[T]:
        """Results of the jobs in order, at most ``concurrency`` running at a time; the first
        failure cancels the rest and is raised as it is (not wrapped in an ExceptionGroup)."""
        limit = asyncio.Semaphore(self._concurrency)

        async def one(job: Callable[[], Awaitable[T]]) -> T:
            async with limit:
                return await job()

        tasks = [asyncio.ensure_future(one(j)) for j in jobs]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
