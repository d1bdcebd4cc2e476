"""The view cache: each dataset's flattened tables, built as a job, kept per data version.

A cache is a directory ``<root>/<dataset>/<key>/`` of Parquet files (one per table of
``connector.fulfilment.views``) and a ``manifest.json``. Its key digests everything the tables
depend on: the views themselves, the FHIR source's version, the dataset's scope and the
opt-out list. So a change to any of them makes the next call build new tables, and every
artefact keyed by ``FlatViews.version`` (cached noisy answers, fitted synthesizers) is stale
at the same moment. Builds run as durable jobs (``view-cache``), pinned to this replica,
because each replica keeps its own cache in its own data directory.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import orjson

from connector.errors import NotReadyError, UpstreamError
from connector.files import private_dir
from connector.fulfilment.flatten import build_flat_views
from connector.fulfilment.scope import DatasetScope
from connector.fulfilment.views import CODING_VIEWS, SCOPE_VIEWS, TABLES, VIEWS
from connector.jobs import Job, JobContext, JobRunner, JobState
from connector.optouts import OptOutService
from connector.ports import Clock, FhirSource, FlatViews, LocalNdjson, ViewRunner

log = logging.getLogger(__name__)

JOB_KIND = "view-cache"
_VIEWS_DIGEST = hashlib.sha256(
    json.dumps([VIEWS, CODING_VIEWS, SCOPE_VIEWS], sort_keys=True).encode()
).hexdigest()[:16]
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def dataset_dir_name(dataset_id: str) -> str:
    """A directory name for a dataset id (ids may hold ``/`` or ``:``)."""
    digest = hashlib.sha256(dataset_id.encode()).hexdigest()[:8]
    return f"{_SAFE.sub('_', dataset_id)[:64]}-{digest}"


class ViewCache:
    def __init__(
        self,
        *,
        root: Path,
        jobs: JobRunner,
        source: FhirSource,
        runner: ViewRunner,
        optouts: OptOutService,
        clock: Clock,
        version_seconds: float = 5.0,
    ) -> None:
        self.root = root
        self.jobs = jobs
        self.source = source
        self.runner = runner
        self.optouts = optouts
        self.clock = clock
        self.version_seconds = version_seconds
        self._source_version: tuple[float, str] | None = None
        self._lock = asyncio.Lock()
        jobs.register(JOB_KIND, self._build)

    async def source_version(self) -> str:
        """The FHIR source's version, asked at most every ``version_seconds`` (a REST
        source's answer costs requests)."""
        async with self._lock:
            now = time.monotonic()
            if self._source_version and now - self._source_version[0] < self.version_seconds:
                return self._source_version[1]
            version = await self.source.version()
            self._source_version = (now, version)
            return version

    def forget_source_version(self) -> None:
        self._source_version = None

    async def key(self, dataset_id: str, scope: DatasetScope) -> str:
        parts = [
            _VIEWS_DIGEST,
            await self.source_version(),
            scope.digest(),
            OptOutService.digest(await self.optouts.ids()),
            dataset_id,
        ]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]

    def directory(self, dataset_id: str, key: str) -> Path:
        return self.root / dataset_dir_name(dataset_id) / key

    def load(self, dataset_id: str, key: str) -> FlatViews | None:
        """The cache built for ``key``, if it is complete."""
        directory = self.directory(dataset_id, key)
        try:
            manifest = json.loads((directory / "manifest.json").read_text())
        except (OSError, ValueError):
            return None
        tables = {t: directory / f"{t}.parquet" for t in TABLES}
        if not all(p.exists() for p in tables.values()):
            return None
        return FlatViews(
            dataset_id=dataset_id,
            version=key,
            directory=directory,
            tables=tables,
            patients=int(manifest["rows"]["patient"]),
        )

    async def current(self, dataset_id: str, scope: DatasetScope) -> FlatViews | None:
        return self.load(dataset_id, await self.key(dataset_id, scope))

    async def request(self, dataset_id: str, scope: DatasetScope) -> tuple[FlatViews | None, Job]:
        """The current tables if built, and the job that builds (or built) them."""
        key = await self.key(dataset_id, scope)
        views = self.load(dataset_id, key)
        job = await self.jobs.enqueue(
            JOB_KIND,
            f"{JOB_KIND}:{self.jobs.node}:{dataset_id}:{key}",
            {"dataset": dataset_id, "scope": scope.as_json(), "key": key},
            local=True,
        )
        if views is None and job.state is JobState.DONE:
            # Built once, since removed (a cleaned data directory): build again.
            job = await self.jobs.enqueue(
                JOB_KIND,
                f"{JOB_KIND}:{self.jobs.node}:{dataset_id}:{key}:{time.time_ns()}",
                {"dataset": dataset_id, "scope": scope.as_json(), "key": key},
                local=True,
            )
        return views, job

    async def ensure(self, dataset_id: str, scope: DatasetScope, *, wait: float) -> FlatViews:
        """The current tables, building them first (waiting up to ``wait`` seconds); else
        ``NotReadyError`` (503 with Retry-After) naming the job."""
        views, job = await self.request(dataset_id, scope)
        if views is not None:
            return views
        finished = await self.jobs.wait(job.id, wait)
        if finished is not None and finished.state is JobState.DONE:
            views = self.load(dataset_id, str(job.params["key"]))
            if views is not None:
                return views
        if finished is not None and finished.state is JobState.FAILED:
            raise UpstreamError(
                f"the data of dataset {dataset_id} could not be prepared (job {job.id} failed; "
                "the hospital's operators see why in its management API)"
            )
        stage = f"{finished.stage}, {finished.percent:.0f}%" if finished else "queued"
        raise NotReadyError(
            f"the data of dataset {dataset_id} are being prepared (job {job.id}: {stage}); "
            "ask again later",
            retry_after=10,
        )

    async def load_or_build(
        self, dataset_id: str, scope: DatasetScope, context: JobContext
    ) -> FlatViews:
        """The current tables, built inside the calling job if they are missing (a job that
        needs them must not wait for another job: the pool may have room for one)."""
        views = await self.current(dataset_id, scope)
        if views is None:
            key = await self._make(dataset_id, scope, context)
            views = self.load(dataset_id, key)
        if views is None:
            raise UpstreamError(f"the flattened tables of dataset {dataset_id} vanished")
        return views

    async def _build(self, job: Job, context: JobContext) -> dict[str, Any]:
        dataset_id = str(job.params["dataset"])
        key = await self._make(dataset_id, DatasetScope.parse(job.params["scope"]), context)
        views = self.load(dataset_id, key)
        return {"key": key, "patients": views.patients if views else 0}

    async def _make(self, dataset_id: str, scope: DatasetScope, context: JobContext) -> str:
        await context.progress("reading the FHIR source", 0.0)
        # The inputs as they are now: if they changed since the job was queued, the tables
        # are built from (and stored under the key of) what was actually read.
        self.forget_source_version()
        key = await self.key(dataset_id, scope)
        optouts = await self.optouts.ids()
        target = self.directory(dataset_id, key)
        staging = self.root / "staging" / context.job.id
        try:
            files = await self._snapshot(scope, staging, context)
            counts = await context.run_cpu(
                build_flat_views,
                self.runner,
                files,
                scope.as_json(),
                optouts,
                str(target),
                self.clock.now().isoformat(),
            )
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        manifest = {
            "dataset": dataset_id,
            "key": key,
            "builtAt": self.clock.now().isoformat(),
            "scope": scope.as_json(),
            "rows": counts,
        }
        _write_private(target / "manifest.json", json.dumps(manifest, indent=2))
        self._prune(dataset_id, keep=key)
        return key

    async def _snapshot(
        self, scope: DatasetScope, staging: Path, context: JobContext
    ) -> dict[str, list[str]]:
        """NDJSON files of every resource type the views read: the file source's own, or
        what a REST source returns, written to ``staging``."""
        types = {"Patient", "Consent", "Group", *scope.resource_types}
        if isinstance(self.source, LocalNdjson):
            return {t: [str(p) for p in self.source.ndjson_files(t)] for t in sorted(types)}
        private_dir(staging)
        files: dict[str, list[str]] = {}
        present = set(await self.source.resource_types())
        for i, rtype in enumerate(sorted(types & present)):
            await context.progress(f"fetching {rtype}", 10.0 * i / len(types))
            path = staging / f"{rtype}.ndjson"
            with _private_open(path) as out:
                async for resource in self.source.search(rtype):
                    out.write(orjson.dumps(resource) + b"\n")
            files[rtype] = [str(path)]
        return files

    def _prune(self, dataset_id: str, *, keep: str) -> None:
        """Remove the dataset's older caches (a fulfilment still reading one keeps its open
        files on POSIX), and builds a killed process left behind a day ago or more."""
        parent = self.root / dataset_dir_name(dataset_id)
        stale = time.time() - 86400
        for child in parent.iterdir() if parent.is_dir() else ():
            if child.name == keep or not child.is_dir():
                continue
            if ".tmp-" not in child.name or child.stat().st_mtime < stale:
                shutil.rmtree(child, ignore_errors=True)


def _private_open(path: Path) -> Any:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    return os.fdopen(fd, "wb")


def _write_private(path: Path, text: str) -> None:
    with _private_open(path) as out:
        out.write(text.encode())
