"""``FhirSource`` over a directory of Bulk Data NDJSON files (the embedded default).

Files are named as ``$export`` writes them: ``Type.ndjson`` or ``Type.<part>.ndjson``, optionally
gzipped (``.gz``); one resource a line, all of the file's type. Other files (``log.ndjson``,
unfinished ``*.part``) are ignored. Files are streamed line by line with orjson, in batches read
on a worker thread so a large file never sits in memory and never blocks the event loop.

Search parameters: ``_id`` and the references ``patient`` (``subject`` or ``patient`` pointing
at ``Patient/<id>``; a bare id means a Patient) and ``subject`` (``Type/id``, or a bare id of
any type), comma-separated values meaning OR. ``_count`` is a page size as on the REST source: a
positive integer, else refused; it has no other effect (paging is a REST notion, the result is
the same). Anything else raises ``FhirSourceError``: silently ignoring a filter would widen a
cohort.

``version()`` hashes the files' names, sizes and modification times.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import re
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import orjson

from adapters.fhir.params import count_param
from connector.errors import FhirSourceError
from connector.ports import FhirResource

FILE_NAME = re.compile(r"^(?P<type>[A-Z][A-Za-z]{1,63})(?:\.[^.]+)*?\.ndjson(?:\.gz)?$")
SUPPORTED = ("_id", "patient", "subject", "_count")
BATCH_LINES = 1000

Matcher = Callable[[FhirResource], bool]


class NdjsonFileSource:
    def __init__(self, directory: Path, *, batch_lines: int = BATCH_LINES) -> None:
        self.directory = directory
        self._batch_lines = batch_lines

    async def search(
        self, resource_type: str, params: Mapping[str, str] | None = None
    ) -> AsyncIterator[FhirResource]:
        matches = self._matcher(resource_type, params or {})
        for path in self._files().get(resource_type, []):
            async for resource in self._read(path, resource_type):
                if matches(resource):
                    yield resource

    async def count(self, resource_type: str, params: Mapping[str, str] | None = None) -> int:
        if any(k != "_count" for k in params or {}):
            return sum([1 async for _ in self.search(resource_type, params)])
        self._matcher(resource_type, params or {})
        files = self._files().get(resource_type, [])
        counts = [await asyncio.to_thread(_count_lines, p, self.directory) for p in files]
        return sum(counts)

    async def resource_types(self) -> list[str]:
        present = []
        for rtype, files in self._files().items():
            for path in files:
                if await asyncio.to_thread(_has_line, path, self.directory):
                    present.append(rtype)
                    break
        return sorted(present)

    async def version(self) -> str:
        digest = hashlib.sha256()
        for rtype, files in sorted(self._files().items()):
            for path in files:
                stat = path.stat()
                digest.update(
                    f"{rtype}\t{path.name}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode()
                )
        return digest.hexdigest()

    async def aclose(self) -> None:
        return None

    def ndjson_files(self, resource_type: str) -> list[Path]:
        """The files holding ``resource_type`` (``connector.ports.LocalNdjson``)."""
        self._matcher(resource_type, {})
        return list(self._files().get(resource_type, []))

    # -- helpers ----------------------------------------------------------------------------

    def _files(self) -> dict[str, list[Path]]:
        if not self.directory.is_dir():
            raise FhirSourceError(
                "NDJSON directory does not exist (PHEMS_FHIR_FILES_DIR)", url=str(self.directory)
            )
        files: dict[str, list[Path]] = {}
        for path in sorted(self.directory.iterdir()):
            match = FILE_NAME.match(path.name)
            if match and path.is_file():
                files.setdefault(match["type"], []).append(path)
        return files

    def _matcher(self, resource_type: str, params: Mapping[str, str]) -> Matcher:
        if not re.fullmatch(r"[A-Z][A-Za-z]{1,63}", resource_type):
            raise FhirSourceError(
                f"not a FHIR resource type: {resource_type!r}", url=str(self.directory)
            )
        unsupported = sorted(k for k in params if k not in SUPPORTED)
        if unsupported:
            raise FhirSourceError(
                f"search {resource_type}: parameter(s) {', '.join(unsupported)} not supported "
                f"by the NDJSON file source (supported: {', '.join(SUPPORTED)})",
                url=str(self.directory),
            )
        count_param(resource_type, params, str(self.directory))
        tests: list[Matcher] = []
        if "_id" in params:
            ids = set(_values(params["_id"]))
            tests.append(lambda r: r.get("id") in ids)
        if "patient" in params:
            patients = {
                v if "/" in v else f"Patient/{v}" for v in map(_ref_key, _values(params["patient"]))
            }
            tests.append(lambda r: bool(patients & _refs(r, ("subject", "patient"))))
        if "subject" in params:
            subjects = {_ref_key(v) for v in _values(params["subject"])}
            typed = {s for s in subjects if "/" in s}
            bare = subjects - typed
            tests.append(lambda r: _subject_matches(_refs(r, ("subject",)), typed, bare))
        return lambda r: all(test(r) for test in tests)

    async def _read(self, path: Path, resource_type: str) -> AsyncIterator[FhirResource]:
        batches = _batches(path, resource_type, self._batch_lines, self.directory)
        try:
            while True:
                batch = await asyncio.to_thread(next, batches, None)
                if batch is None:
                    return
                for resource in batch:
                    yield resource
        finally:
            try:
                batches.close()
            except ValueError:  # still running in the worker thread after a cancellation
                pass


def _open(path: Path) -> AbstractContextManager[Iterable[bytes]]:
    if path.suffix == ".gz":
        return gzip.GzipFile(path, "rb")
    return path.open("rb")


def _batches(
    path: Path, resource_type: str, size: int, directory: Path
) -> Generator[list[FhirResource], None, None]:
    batch: list[FhirResource] = []
    number = 0
    try:
        with _open(path) as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                batch.append(_parse(line, path, number, resource_type, directory))
                if len(batch) >= size:
                    yield batch
                    batch = []
    except (OSError, EOFError) as exc:
        raise FhirSourceError(f"{path.name} line {number + 1}: {exc}", url=str(directory)) from None
    if batch:
        yield batch


def _parse(line: bytes, path: Path, number: int, resource_type: str, directory: Path) -> Any:
    try:
        resource = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise FhirSourceError(
            f"{path.name} line {number}: invalid JSON ({exc})", url=str(directory)
        ) from None
    if not isinstance(resource, dict) or resource.get("resourceType") != resource_type:
        raise FhirSourceError(
            f"{path.name} line {number}: not a {resource_type} resource", url=str(directory)
        )
    return resource


def _count_lines(path: Path, directory: Path) -> int:
    try:
        with _open(path) as lines:
            return sum(1 for line in lines if line.strip())
    except (OSError, EOFError) as exc:
        raise FhirSourceError(f"{path.name}: {exc}", url=str(directory)) from None


def _has_line(path: Path, directory: Path) -> bool:
    try:
        with _open(path) as lines:
            return any(line.strip() for line in lines)
    except (OSError, EOFError) as exc:
        raise FhirSourceError(f"{path.name}: {exc}", url=str(directory)) from None


def _values(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _ref_key(reference: str) -> str:
    """``Type/id`` of a relative, absolute or versioned literal reference (else unchanged)."""
    path = reference.split("/_history/", 1)[0]
    parts = path.rstrip("/").split("/")
    return "/".join(parts[-2:]) if len(parts) >= 2 else path


def _refs(resource: FhirResource, elements: tuple[str, ...]) -> set[str]:
    found: set[str] = set()
    for element in elements:
        value = resource.get(element)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict) and isinstance(item.get("reference"), str):
                found.add(_ref_key(item["reference"]))
    return found


def _subject_matches(refs: set[str], typed: set[str], bare: set[str]) -> bool:
    return bool(refs & typed) or any(r.rsplit("/", 1)[-1] in bare for r in refs)
