"""FHIR Bulk Data Access ``$export`` (https://hl7.org/fhir/uv/bulkdata/export.html), client side.

    kick-off   GET [base]/$export | Patient/$export | Group/{id}/$export
               Prefer: respond-async, Accept: application/fhir+json   -> 202 + Content-Location
    status     GET <Content-Location>   202 (+ Retry-After, X-Progress) ... 200 + manifest
    files      GET manifest.output[].url   NDJSON, streamed line by line
    clean-up   DELETE <Content-Location>

An export whose manifest lists error files with error/fatal issues, whose file line counts
differ from the manifest's ``count``, or that does not finish before its deadline raises
``FhirSourceError``: a partial export is never returned as complete.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode

import orjson

from adapters.fhir.http import FhirHttp
from adapters.fhir.retry import parse_retry_after
from adapters.fhir.shapes import raise_on_errors
from connector.errors import FhirSourceError
from connector.files import DIR_MODE, open_private
from connector.ports import FhirResource

log = logging.getLogger(__name__)
RESOURCE_TYPE = re.compile(r"[A-Z][A-Za-z]{1,63}")  # fullmatch

ExportLevel = Literal["system", "patient", "group"]
DEFAULT_POLL_SECONDS = 2.0


@dataclass(frozen=True)
class ExportRequest:
    level: ExportLevel = "system"
    group_id: str | None = None
    types: Sequence[str] = ()
    since: datetime | str | None = None

    def path(self) -> str:
        if self.level == "system":
            return "$export"
        if self.level == "patient":
            return "Patient/$export"
        if not self.group_id:
            raise ValueError("a group-level export needs group_id")
        return f"Group/{self.group_id}/$export"

    def query(self) -> str:
        params: list[tuple[str, str]] = []
        if self.types:
            params.append(("_type", ",".join(self.types)))
        if self.since is not None:
            since = self.since.isoformat() if isinstance(self.since, datetime) else self.since
            params.append(("_since", since))
        return urlencode(params)


@dataclass(frozen=True)
class ExportFile:
    type: str
    url: str
    count: int | None


@dataclass(frozen=True)
class ExportManifest:
    transaction_time: str
    requires_access_token: bool
    output: list[ExportFile]
    errors: list[ExportFile]
    raw: dict[str, Any] = field(repr=False, default_factory=dict)


@dataclass(frozen=True)
class ExportResult:
    manifest: ExportManifest
    files: list[Path]
    counts: dict[str, int]


class BulkExporter:
    def __init__(self, http: FhirHttp, *, deadline_seconds: float = 3600.0) -> None:
        self._http = http
        self._deadline_seconds = deadline_seconds

    async def run(self, request: ExportRequest) -> tuple[str, ExportManifest]:
        """Kick off, poll until done; return the status URL and the checked manifest."""
        status_url = await self._kickoff(request)
        manifest = await self._poll(status_url)
        await self._check_errors(manifest)
        return status_url, manifest

    async def resources(self, request: ExportRequest) -> AsyncIterator[FhirResource]:
        status_url, manifest = await self.run(request)
        for item in manifest.output:
            async for line in self._lines(item, manifest):
                yield _parse_line(line, item, self._http.base_url)
        await self._delete(status_url)

    async def to_directory(self, request: ExportRequest, directory: Path) -> ExportResult:
        """Write ``Type.000.ndjson``, ``Type.001.ndjson`` ... as the manifest lists them."""
        status_url, manifest = await self.run(request)
        directory.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        files: list[Path] = []
        counts: dict[str, int] = {}
        root = directory.resolve()
        for item in manifest.output:
            number = sum(1 for f in files if f.name.startswith(f"{item.type}."))
            target = directory / f"{item.type}.{number:03d}.ndjson"
            if target.resolve().parent != root:  # the manifest's type was checked; twice is cheap
                raise FhirSourceError(
                    f"$export file of type {item.type!r} would be written outside {directory}",
                    url=self._http.base_url,
                )
            partial = target.with_name(target.name + ".part")
            lines = 0
            # Written under .part and renamed at the end: a file with the final name is complete.
            with open_private(partial, "wb") as out:
                async for line in self._lines(item, manifest):
                    out.write(line.rstrip(b"\r"))
                    out.write(b"\n")
                    lines += 1
            partial.replace(target)
            files.append(target)
            counts[item.type] = counts.get(item.type, 0) + lines
        await self._delete(status_url)
        return ExportResult(manifest, files, counts)

    async def _kickoff(self, request: ExportRequest) -> str:
        query = request.query()
        url = f"{self._http.base_url}/{request.path()}" + (f"?{query}" if query else "")
        result = await self._http.request(
            "GET", url, headers={"Prefer": "respond-async"}, ok=(202,)
        )
        location = result.headers.get("Content-Location")
        if not location:
            raise FhirSourceError(
                f"{self._http.describe('GET', url)}: 202 without Content-Location",
                url=self._http.base_url,
            )
        return location

    async def _poll(self, status_url: str) -> ExportManifest:
        deadline = time.monotonic() + self._deadline_seconds
        what = self._http.describe("GET", status_url)
        while True:
            result = await self._http.request("GET", status_url, ok=(200, 202))
            if result.status == 200:
                return _manifest(result.json(), what, self._http.base_url)
            wait = parse_retry_after(result.headers.get("Retry-After"), datetime.now(UTC))
            wait = DEFAULT_POLL_SECONDS if wait is None else wait
            wait = min(wait, self._http.retry.max_retry_after)
            if time.monotonic() + wait > deadline:
                raise FhirSourceError(
                    f"{what}: export not finished after {self._deadline_seconds:.0f} s "
                    f"(progress: {result.headers.get('X-Progress', 'unknown')})",
                    url=self._http.base_url,
                )
            log.debug("export %s in progress (%s)", status_url, result.headers.get("X-Progress"))
            await asyncio.sleep(wait)

    async def _check_errors(self, manifest: ExportManifest) -> None:
        for item in manifest.errors:
            async for line in self._lines(item, manifest):
                outcome = _parse_line(line, item, self._http.base_url)
                what = "$export reported an error, the export is incomplete"
                raise_on_errors(outcome, what, self._http.base_url)  # checks the shape too
                for issue in outcome.get("issue") or []:
                    log.warning("$export: %s", issue.get("diagnostics") or issue.get("code"))

    async def _lines(self, item: ExportFile, manifest: ExportManifest) -> AsyncIterator[bytes]:
        # Files may live on another host (a CDN); send our credentials only where the server
        # said they are needed and only to the server's own origin.
        authenticate = manifest.requires_access_token or self._http.same_origin(item.url)
        if manifest.requires_access_token and not self._http.same_origin(item.url):
            raise FhirSourceError(
                f"$export file {item.url} needs our access token but is not on the server's origin",
                url=self._http.base_url,
            )
        lines = 0
        async for line in self._http.stream_lines(item.url, authenticate=authenticate):
            lines += 1
            yield line
        if item.count is not None and lines != item.count:
            raise FhirSourceError(
                f"$export file {item.url}: manifest says {item.count} resources, got {lines}",
                url=self._http.base_url,
            )

    async def _delete(self, status_url: str) -> None:
        try:
            await self._http.request("DELETE", status_url, ok=(200, 202, 204))
        except FhirSourceError as exc:
            # The data is complete; a server that keeps its files is only untidy.
            log.warning("could not delete finished export %s: %s", status_url, exc)


def _manifest(doc: Any, what: str, base_url: str) -> ExportManifest:
    if not isinstance(doc, dict) or not isinstance(doc.get("output"), list):
        raise FhirSourceError(f"{what}: not a Bulk Data manifest", url=base_url)

    def files(key: str) -> list[ExportFile]:
        entries = doc.get(key) or []
        if not isinstance(entries, list):
            raise FhirSourceError(f"{what}: manifest {key} is not an array", url=base_url)
        out = []
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
                raise FhirSourceError(f"{what}: malformed manifest {key} entry", url=base_url)
            count, rtype = entry.get("count"), entry.get("type", "")
            if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
                raise FhirSourceError(f"{what}: manifest {key} count is not a number", url=base_url)
            # The type names the files we write: a resource type, never a path.
            if not isinstance(rtype, str) or not RESOURCE_TYPE.fullmatch(rtype):
                raise FhirSourceError(
                    f"{what}: manifest {key} entry has no resource type ({str(rtype)[:80]!r})",
                    url=base_url,
                )
            out.append(ExportFile(rtype, entry["url"], count))
        return out

    requires_token = doc.get("requiresAccessToken", False)
    if not isinstance(requires_token, bool):
        problem = "manifest requiresAccessToken is not a boolean"
        raise FhirSourceError(f"{what}: {problem}", url=base_url)
    return ExportManifest(
        transaction_time=str(doc.get("transactionTime", "")),
        requires_access_token=requires_token,
        output=files("output"),
        errors=files("error"),
        raw=doc,
    )


def _parse_line(line: bytes, item: ExportFile, base_url: str) -> FhirResource:
    try:
        resource = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise FhirSourceError(
            f"$export file {item.url}: invalid JSON line ({exc})", url=base_url
        ) from None
    if not isinstance(resource, dict):
        raise FhirSourceError(f"$export file {item.url}: a line is not a JSON object", url=base_url)
    return resource
