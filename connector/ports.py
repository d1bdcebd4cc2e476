"""Ports: the interfaces the connector needs from the outside world.

``adapters/`` implements them; only the composition root (``connector.composition``) wires an
implementation in. Each port has one contract test suite run against every implementation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from catalog.formats import OutputType

FhirResource = dict[str, Any]


class Clock(Protocol):
    """Current time, injectable for tests. Always timezone-aware UTC."""

    def now(self) -> datetime: ...


class FhirSource(Protocol):
    """A hospital's FHIR R4 data, read-only.

    ``search`` yields every matching resource exactly once (following paging to the end) as
    parsed JSON dicts, each of the type searched for; it raises
    ``connector.errors.FhirSourceError`` (naming the server or file and the request) when the
    source fails after retries or answers something malformed or of another type; a partial
    read is never reported as complete. Supported parameters depend on the source: the REST
    source passes them to the server; the file source supports ``_id`` and
    ``patient``/``subject`` references, and raises ``FhirSourceError`` for others instead of
    ignoring them. On both, ``_count`` is only a page size: a positive integer (``_count=0``,
    FHIR's "total only", is refused; ``count`` gives totals).
    """

    def search(
        self, resource_type: str, params: Mapping[str, str] | None = None
    ) -> AsyncIterator[FhirResource]: ...

    async def count(self, resource_type: str, params: Mapping[str, str] | None = None) -> int:
        """Number of matching resources (``_summary=count`` on a REST server)."""
        ...

    async def resource_types(self) -> list[str]:
        """Resource types the source holds at least one resource of, sorted (on a server,
        also the types its CapabilityStatement does not declare)."""
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


# -- fulfilment: from an agreement to data (DESIGN.md §4) --------------------------------------


@dataclass(frozen=True)
class FlatViews:
    """A dataset's flattened tables for one data version: its scope applied, opted-out patients
    removed. Every fulfilment reads these and nothing else of the FHIR data.

    ``tables`` maps each table of ``connector.fulfilment.views.TABLES`` to a Parquet file
    (columns as documented there). ``version`` changes whenever the FHIR data, the dataset's
    scope or the opt-outs change: it keys every cached derived artefact (cached noisy answers,
    fitted synthesizers), so nothing computed before an opt-out is served after it. Plain data,
    so it can be handed to a worker process.
    """

    dataset_id: str
    version: str
    directory: Path
    tables: Mapping[str, Path]
    patients: int


@dataclass(frozen=True)
class RequestFacts:
    """What one data plane call asks for, as the policy engine needs it (data plane scope:
    nothing may be unknown). A fulfilment states its effective values, defaults applied:

    ``purpose`` the purpose the call states (None: the data permit's purpose applies);
    ``min_cell_size`` the smallest cell an aggregate answer may show (0 where the output has no
    cells); ``epsilon`` the privacy budget this call spends (0.0 where it spends none);
    ``patients`` the number of patient records the call delivers (synthetic or extracted
    patients; 0 for an aggregate answer).
    """

    output_type: OutputType
    purpose: str | None = None
    min_cell_size: int = 0
    epsilon: float = 0.0
    patients: int = 0


@dataclass(frozen=True)
class FulfilmentRequest:
    """One authorised data plane call, as the fulfilment sees it: who (already checked), what
    they sent, and the limits the agreement's policy sets (``policy_limits``: operand local
    name -> the bound its constraints put on it, e.g. ``{"minCellSize": 10, "epsilon": 1.0}``;
    a fulfilment may use them as defaults, the policy engine enforces them)."""

    agreement_id: str
    transfer_id: str
    consumer: str
    dataset_id: str
    body: bytes
    media_type: str | None
    params: Mapping[str, str]
    policy_limits: Mapping[str, float] = field(default_factory=dict)


@dataclass
class FulfilmentResult:
    """What a fulfilment delivers: a media type and the body as chunks (streamed to the
    caller), plus what the audit record of the call keeps. ``audit`` holds descriptions only
    (sizes, model versions, query digests), never a value computed from patient data."""

    media_type: str
    chunks: AsyncIterator[bytes]
    audit: Mapping[str, Any] = field(default_factory=dict)
    # The privacy budget the answer actually used, when less than the call stated (an answer
    # released before, repeated: no new information): the rest is given back.
    epsilon_spent: float | None = None


class Fulfilment(Protocol):
    """One way of delivering data for an output type (aggregate query, synthetic bundle, ...).

    The data plane service (``connector.dataplane.service``) walks the road around it: token,
    transfer, policy at data plane scope with ``facts``, budget and count, the dataset's flat
    views (scope and opt-outs applied), then ``fulfil``, then delivery and audit. So a
    fulfilment never sees a refused call, an opted-out patient or data outside the dataset's
    scope, and must apply its own disclosure control before returning.

    ``facts`` reads the request (raising ``BadRequestError`` naming the bad part) without
    touching data; ``prepare`` runs after the policy let the call through and before anything
    is spent: it raises ``UnavailableError`` (503, with Retry-After when it will pass later)
    when what the call needs beyond the views is not ready (a synthesizer fitted on this data
    version), starting the job that makes it ready, so such a call spends no use or budget;
    ``fulfil`` does the work (CPU-heavy parts off the event loop).
    """

    @property
    def output_type(self) -> OutputType: ...

    def facts(self, request: FulfilmentRequest) -> RequestFacts: ...

    async def prepare(
        self, request: FulfilmentRequest, facts: RequestFacts, views: FlatViews
    ) -> None: ...

    async def fulfil(
        self, request: FulfilmentRequest, facts: RequestFacts, views: FlatViews
    ) -> FulfilmentResult: ...


class ViewRunner(Protocol):
    """SQL-on-FHIR v2 ViewDefinitions over resources (implemented by ``adapters.sof``).
    Picklable: the view cache hands it to a worker process, which compiles the views there."""

    def compile(
        self, view: Mapping[str, Any]
    ) -> tuple[list[tuple[str, str | None]], Callable[[FhirResource], list[tuple[Any, ...]]]]:
        """The view's columns in order, as (name, FHIR type or None), and a function giving the
        rows (tuples in column order) one resource contributes; ``ViewDefinitionError`` (400)
        if the view is invalid, ``ViewEvaluationError`` from the function for data the view
        cannot represent."""
        ...


@runtime_checkable
class ViewSql(Protocol):
    """A ``ViewRunner`` that also compiles ViewDefinitions to SQL over Bulk NDJSON files, run
    by DuckDB (implemented by ``adapters.sof``). The view cache runs those queries, which read
    the files on all cores without a Python object per resource, and the runner's ``compile``
    for the views that do not compile (and for files a query fails on).

    Contract: a query's rows are the ones ``compile``'s function gives for the resources of
    the files (same columns in the same order, same values; strings, decimals as DOUBLE,
    integers as BIGINT, booleans), or the query fails with a DuckDB error whose message holds
    no value from the data. It fails on any line that is not a JSON object of the view's
    resource type, and on data it cannot represent exactly; the caller then runs ``compile``
    over the files, which gives its rows or its own error."""

    def view_sql(self, view: Mapping[str, Any], files: Sequence[str]) -> str | None:
        """A DuckDB ``SELECT`` giving ``view``'s rows over ``files`` (NDJSON, optionally
        gzipped), or None if the view's shape is not compiled; ``ViewDefinitionError`` (400)
        if the view is invalid."""
        ...


@runtime_checkable
class LocalNdjson(Protocol):
    """A ``FhirSource`` whose data are already Bulk NDJSON files on this machine: the view
    cache reads them in a worker process instead of copying them through ``search``."""

    def ndjson_files(self, resource_type: str) -> list[Path]: ...


# -- synthetic data (DESIGN.md §4, issue 21) ------------------------------------------------

#: Progress of a long job: (stage, percent 0..100). Called from the worker doing the job.
ProgressCallback = Callable[[str, float], None]


@dataclass(frozen=True)
class SyntheticModelRecord:
    """What the store keeps about one fitted synthesizer: which dataset, data version and
    settings (``key``) it was fitted for, where its files are, and whether it meets the
    hospital's minimum quality and privacy (``accepted``; a rejected model is never served,
    ``reason`` says why). ``summary`` holds scores only (quality, DCR and disclosure
    protection), never patient data."""

    dataset_id: str
    version: str
    key: str
    backend: str
    directory: str
    fitted_at: datetime
    accepted: bool
    reason: str | None = None
    summary: Mapping[str, Any] = field(default_factory=dict)


class SyntheticModelStore(Protocol):
    """Fitted synthesizers' metadata (the files live in the data directory)."""

    async def save(self, record: SyntheticModelRecord) -> None:
        """Insert or replace the record of (dataset_id, key)."""
        ...

    async def get(self, dataset_id: str, key: str) -> SyntheticModelRecord | None: ...

    async def for_dataset(self, dataset_id: str) -> list[SyntheticModelRecord]:
        """The dataset's models, newest first."""
        ...

    async def delete(self, dataset_id: str, key: str) -> None: ...


class SyntheticGenerator(Protocol):
    """Fits synthetic-data models on a dataset's flat views and samples FHIR from them.

    Independent of the library behind it (``connector.synthetic.SdvGenerator`` uses SDV). A
    model is named by ``model_key(views)``: the data version and the generator's settings, so
    a model fitted before the data or the opt-outs changed is never the one asked for.
    ``fit`` is CPU-heavy and runs in a worker process (it takes and returns plain data);
    ``sample`` is for a worker thread; neither may run on the event loop.
    """

    def model_key(self, views: FlatViews) -> str: ...

    def fit(self, views: FlatViews, progress: ProgressCallback) -> SyntheticModelRecord:
        """Fit, evaluate (quality, privacy, utility reports) and write the model's files."""
        ...

    def sample(
        self, record: SyntheticModelRecord, patients: int, *, seed: int
    ) -> Iterator[list[FhirResource]]:
        """``patients`` synthetic patients' resources, in batches of whole patients (each
        batch a list: a Patient and its resources, references inside the batch's patients)."""
        ...

    def report(self, record: SyntheticModelRecord) -> Mapping[str, Any]:
        """The model's quality, privacy and utility report (JSON-able)."""
        ...

    def report_page(self, record: SyntheticModelRecord) -> bytes:
        """The same report as one self-contained HTML page (plots embedded)."""
        ...
