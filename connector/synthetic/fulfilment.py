"""The ``Fulfilment`` of ``OutputType.SYNTHETIC``: synthetic patients sampled from the model
fitted on the dataset's current flat views, with the model's report.

Request (JSON body, or the same names as query parameters; the body wins):

``patients``     how many synthetic patients (1..100,000; default 100). A policy fact: the
                 agreement's ``count`` constraint limits it.
``format``       ``bundle`` (a FHIR Bundle, ``application/fhir+json``; the default up to 10,000
                 patients) or ``ndjson`` (``application/fhir+ndjson``, one resource a line; the
                 default above 10,000, where a Bundle is refused).
``bundleType``   ``collection`` (default) or ``transaction`` (each entry POSTs to its type).
``part``         ``data`` (default), ``report`` (the report as JSON) or ``report.html`` (the
                 report page with its plots); a report part delivers no patient (0 patients).
``seed``         an integer to get the same patients again from the same model (default:
                 random).

A Bundle's last entry is a ``DocumentReference`` carrying the report (JSON and HTML
attachments), so a data user who keeps the Bundle keeps the evidence with it. NDJSON carries
resources only; its report is the ``part=report`` call. No model fitted for the views' data
version yet: ``ModelNotReadyError`` (503 with Retry-After; the caller starts the fit job); a
model below the hospital's minimum levels: ``ModelRejectedError``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from catalog.formats import OutputType
from connector.errors import BadRequestError, ModelNotReadyError, ModelRejectedError
from connector.ports import (
    Clock,
    FhirResource,
    FlatViews,
    FulfilmentRequest,
    FulfilmentResult,
    RequestFacts,
    SyntheticGenerator,
    SyntheticModelRecord,
    SyntheticModelStore,
)

MAX_PATIENTS = 100_000
BUNDLE_MAX_PATIENTS = 10_000
DEFAULT_PATIENTS = 100
FHIR_JSON = "application/fhir+json"
FHIR_NDJSON = "application/fhir+ndjson"
FORMATS = ("bundle", "ndjson")
PARTS = ("data", "report", "report.html")


class SyntheticFulfilment:
    """``generator_for(dataset_id)`` gives the dataset's generator (its settings);
    ``request_fit(dataset_id, views)``, when given, makes sure a fit for the views' data
    version is under way (``fits.SyntheticFits.request``) and describes its job;
    ``retry_after`` is what a request without a fitted model is told to wait (seconds)."""

    def __init__(
        self,
        generator_for: Callable[[str], SyntheticGenerator],
        store: SyntheticModelStore,
        clock: Clock,
        *,
        request_fit: Callable[[str, FlatViews], Awaitable[str]] | None = None,
        retry_after: int = 60,
    ) -> None:
        self._generator_for = generator_for
        self._store = store
        self._clock = clock
        self._request_fit = request_fit
        self._retry_after = retry_after

    @property
    def output_type(self) -> OutputType:
        return OutputType.SYNTHETIC

    def facts(self, request: FulfilmentRequest) -> RequestFacts:
        ask = _parse(request)
        patients = ask["patients"] if ask["part"] == "data" else 0
        return RequestFacts(OutputType.SYNTHETIC, purpose=ask["purpose"], patients=patients)

    async def model(self, dataset_id: str, views: FlatViews) -> SyntheticModelRecord:
        """The accepted model for the views' data version, or the error saying why not."""
        generator = self._generator_for(dataset_id)
        record = await self._store.get(dataset_id, generator.model_key(views))
        if record is None:
            raise ModelNotReadyError(
                f"dataset {dataset_id}: no synthetic data model for its current data yet; "
                "one is being fitted, retry later",
                retry_after=self._retry_after,
            )
        if not Path(record.directory, "model.pkl").exists():  # the data directory was reset
            raise ModelNotReadyError(
                f"dataset {dataset_id}: the synthetic data model's files are missing; "
                "it is being fitted again, retry later",
                retry_after=self._retry_after,
            )
        if not record.accepted:
            raise ModelRejectedError(
                f"dataset {dataset_id}: the synthetic data model is not served: {record.reason}"
            )
        return record

    async def prepare(
        self, request: FulfilmentRequest, facts: RequestFacts, views: FlatViews
    ) -> None:
        """Before anything is spent: the accepted model for the views' data version exists,
        or the fit is started (``request_fit``) and ``ModelNotReadyError`` names its job."""
        try:
            await self.model(request.dataset_id, views)
        except ModelNotReadyError as exc:
            if self._request_fit is None:
                raise
            job = await self._request_fit(request.dataset_id, views)
            raise ModelNotReadyError(f"{exc.detail} ({job})", retry_after=exc.retry_after) from None

    async def fulfil(
        self, request: FulfilmentRequest, facts: RequestFacts, views: FlatViews
    ) -> FulfilmentResult:
        ask = _parse(request)
        generator = self._generator_for(request.dataset_id)
        record = await self.model(request.dataset_id, views)
        audit = {
            "model": record.key,
            "backend": record.backend,
            "data_version": views.version,
            "part": ask["part"],
            "patients": facts.patients,
            "format": ask["format"],
        }
        if ask["part"] == "report":
            whole = await asyncio.to_thread(generator.report, record)
            body = json.dumps(whole, indent=2).encode()
            return FulfilmentResult("application/json", _once(body), audit)
        if ask["part"] == "report.html":
            page = await asyncio.to_thread(generator.report_page, record)
            return FulfilmentResult("text/html; charset=utf-8", _once(page), audit)
        seed = ask["seed"] if ask["seed"] is not None else secrets.randbelow(2**31)
        batches = generator.sample(record, facts.patients, seed=seed)
        # The first batch before anything is delivered: a model that cannot be loaded or
        # sampled fails the call here, and the data plane gives its use back.
        first = await asyncio.to_thread(next, batches, None)
        batches = itertools.chain([] if first is None else [first], batches)
        if ask["format"] == "ndjson":
            return FulfilmentResult(FHIR_NDJSON, _ndjson(batches), audit)
        now = self._clock.now().isoformat().replace("+00:00", "Z")
        report = json.dumps(await asyncio.to_thread(generator.report, record)).encode()
        page = await asyncio.to_thread(generator.report_page, record)
        chunks = _bundle(batches, ask["bundle_type"], now, report, page)
        return FulfilmentResult(FHIR_JSON, chunks, audit)


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


async def _batches(batches: Iterator[list[FhirResource]]) -> AsyncIterator[list[FhirResource]]:
    """Sampling is CPU work: each batch is drawn on a worker thread, off the event loop."""
    while (batch := await asyncio.to_thread(next, batches, None)) is not None:
        yield batch


async def _ndjson(batches: Iterator[list[FhirResource]]) -> AsyncIterator[bytes]:
    async for batch in _batches(batches):
        yield b"".join(orjson.dumps(r) + b"\n" for r in batch)


async def _bundle(
    batches: Iterator[list[FhirResource]], bundle_type: str, now: str, report: bytes, page: bytes
) -> AsyncIterator[bytes]:
    from connector.synthetic.fhir import BUNDLE_TAIL, bundle_entry, bundle_head, report_document

    yield bundle_head(bundle_type=bundle_type, bundle_id=str(uuid.uuid4()), timestamp=now)
    first = True
    async for batch in _batches(batches):
        parts = []
        for resource in batch:
            parts.append((b"" if first else b",") + bundle_entry(resource, bundle_type=bundle_type))
            first = False
        yield b"".join(parts)
    document = report_document(report, page, document_id=str(uuid.uuid4()), date=now)
    yield (b"" if first else b",") + bundle_entry(document, bundle_type=bundle_type)
    yield BUNDLE_TAIL


def _parse(request: FulfilmentRequest) -> dict[str, Any]:
    body: Mapping[str, Any] = {}
    if request.body.strip():
        try:
            parsed = json.loads(request.body)
        except ValueError:
            raise BadRequestError("synthetic request: the body is not JSON") from None
        if not isinstance(parsed, dict):
            raise BadRequestError("synthetic request: the body must be a JSON object")
        body = parsed
    known = {"patients", "format", "bundleType", "part", "seed", "purpose"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise BadRequestError(
            f"synthetic request: unknown field(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(known))}"
        )

    def get(name: str) -> Any:
        return body.get(name, request.params.get(name))

    patients = _integer("patients", get("patients"), DEFAULT_PATIENTS)
    if not 1 <= patients <= MAX_PATIENTS:
        raise BadRequestError(
            f"synthetic request: patients must be 1..{MAX_PATIENTS}, got {patients}"
        )
    fmt = get("format") or ("bundle" if patients <= BUNDLE_MAX_PATIENTS else "ndjson")
    if fmt not in FORMATS:
        raise BadRequestError(f"synthetic request: format must be one of {', '.join(FORMATS)}")
    if fmt == "bundle" and patients > BUNDLE_MAX_PATIENTS:
        raise BadRequestError(
            f"synthetic request: a Bundle holds at most {BUNDLE_MAX_PATIENTS} patients; "
            "ask for format=ndjson"
        )
    bundle_type = get("bundleType") or "collection"
    if bundle_type not in ("collection", "transaction"):
        raise BadRequestError("synthetic request: bundleType must be collection or transaction")
    part = get("part") or "data"
    if part not in PARTS:
        raise BadRequestError(f"synthetic request: part must be one of {', '.join(PARTS)}")
    seed = get("seed")
    purpose = get("purpose")
    return {
        "patients": patients,
        "format": fmt,
        "bundle_type": bundle_type,
        "part": part,
        "seed": None if seed is None else _integer("seed", seed, 0),
        "purpose": str(purpose) if purpose is not None else None,
    }


def _integer(name: str, value: Any, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise BadRequestError(f"synthetic request: {name} must be an integer")
    try:
        return int(value)
    except ValueError:
        raise BadRequestError(f"synthetic request: {name} must be an integer") from None
