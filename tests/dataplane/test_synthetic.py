"""Synthetic bundles through the data plane, with the installed synthetic fulfilment and the
job queue: a pull before a model exists is a 503 with Retry-After that spends nothing and
starts one fit job; the fitted model is served; an opt-out makes it stale until refitted; the
number of patients is a policy fact; tokens are checked as for any pull; the delivery is
audited with who, how many and which model."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from catalog.formats import Format, OutputType
from connector.composition import Services, build_services
from connector.db.synthetic_models import SqlSyntheticModelStore
from connector.dsp.states import TransferState
from connector.errors import (
    AuthenticationError,
    ForbiddenError,
    ModelNotReadyError,
    NotReadyError,
    PolicyViolationError,
    UnavailableError,
)
from connector.fulfilment.scope import DatasetScope
from connector.identity.keys import load_or_create_keys
from connector.jobs import JobState
from connector.settings import Settings
from connector.synthetic.fits import JOB_KIND
from tests.dataplane.test_service import (
    AUTHORITY,
    CountingSource,
    _agreement,
    _audit,
    _constraint,
    _transfer,
    _uses,
)
from tests.fulfilment.conftest import patient_ids

SYNTHETIC = _constraint("phems:outputType", "eq", "synthetic")
PATIENTS_LIMIT = _constraint("phems:patients", "lteq", 100)


@dataclass
class Synth:
    services: Services
    source: CountingSource
    data: Path


@pytest.fixture
async def synth(tmp_path: Path, sample_files: Path) -> AsyncIterator[Synth]:
    data = tmp_path / "fhir"
    shutil.copytree(sample_files, data)
    settings_dir = tmp_path / "data" / "synthetic" / "settings"
    settings_dir.mkdir(parents=True)
    # Small and fast: the default copula, codes of at least 3 patients.
    (settings_dir / "ds.json").write_text(json.dumps({"min_code_patients": 3}))
    services = await build_services(
        Settings(
            data_dir=tmp_path / "data",
            fhir_files_dir=data,
            trusted_issuers=[AUTHORITY],
            fhir_version_cache_seconds=0.0,
            job_poll_seconds=0.1,
            job_lease_seconds=5.0,  # the job's row follows the worker every 1.7 s
            dataplane_wait_seconds=0.0,
        )
    )
    source = CountingSource(services.views.source)
    services.views.source = source  # type: ignore[assignment]
    try:
        yield Synth(services, source, data)
    finally:
        await services.aclose()


async def _pull(
    s: Services, token: str, params: Mapping[str, str], tid: str = "urn:uuid:t1"
) -> tuple[str, bytes]:
    async def read() -> bytes:
        return b""

    result = await s.dataplane.pull(tid, token, body=read, media_type=None, params=params)
    return result.media_type, b"".join([c async for c in result.chunks])


async def _model_needed(s: Services, token: str) -> ModelNotReadyError:
    """Pull until the flattened tables are built (a job, run here) and the model is what is
    missing: the fit is asked for only once the tables exist."""
    while True:
        try:
            await _pull(s, token, {"patients": "5"})
        except NotReadyError:
            assert await _fit_jobs(s) == [] or all(j.state.finished for j in await _fit_jobs(s))
            await s.jobs.drain()
            continue
        except ModelNotReadyError as exc:
            return exc
        raise AssertionError("served without a fitted model")


async def _fit_jobs(s: Services) -> list[Any]:
    return await s.jobs.store.recent(kind=JOB_KIND)


async def _served(s: Services, token: str, patients: int = 5) -> dict[str, Any]:
    media, body = await _pull(s, token, {"patients": str(patients), "seed": "3"})
    assert media == "application/fhir+json"
    bundle: dict[str, Any] = json.loads(body)
    return bundle


def test_synthetic_is_installed_with_the_extra(synth: Synth) -> None:
    assert OutputType.SYNTHETIC in synth.services.fulfilments.output_types
    assert Format.SYNTHETIC in synth.services.fulfilments.formats


async def test_not_ready_spends_nothing_fits_once_then_serves(synth: Synth) -> None:
    s = synth.services
    aid = await _agreement(s, SYNTHETIC, PATIENTS_LIMIT, _constraint("count", "lteq", 3))
    token = await _transfer(s, aid, fmt=Format.SYNTHETIC)
    for _ in range(2):
        waiting = await _model_needed(s, token)
        assert waiting.headers()["Retry-After"] == "10" and waiting.status == 503
        assert "job " in waiting.detail
    assert await _uses(s, aid) == (0, 0.0)  # nothing spent, twice
    [job] = await _fit_jobs(s)  # one fit for the data version, however many ask
    assert job.state is JobState.QUEUED and job.node == s.jobs.node
    await s.jobs.drain()
    [job] = await _fit_jobs(s)
    assert job.state is JobState.DONE, job.error
    assert job.result["accepted"] is True and job.result["model"]
    bundle = await _served(s, token)
    patients = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
    assert len(patients) == 5
    assert await _uses(s, aid) == (1, 0.0)
    delivered = [d for e, d in await _audit(s) if e == "dataplane.delivered"]
    assert delivered == [
        {
            "mediaType": "application/fhir+json",
            "epsilonSpent": 0.0,
            "model": job.result["model"],
            "backend": "gaussian_copula",
            "data_version": job.result["model"].split("-")[0],
            "part": "data",
            "patients": 5,
            "format": "bundle",
        }
    ]
    calls = [d for e, d in await _audit(s) if e == "dataplane.call"]
    assert [c["patients"] for c in calls] == [5]


async def test_an_opt_out_makes_the_model_stale_until_refitted(synth: Synth) -> None:
    s = synth.services
    aid = await _agreement(s, SYNTHETIC, PATIENTS_LIMIT)
    token = await _transfer(s, aid, fmt=Format.SYNTHETIC)
    await _model_needed(s, token)
    await s.jobs.drain()
    await _served(s, token)
    [first] = await _fit_jobs(s)
    old = first.result["model"]
    models = SqlSyntheticModelStore(s.engine)
    [record] = await models.for_dataset("ds")
    old_dir = Path(record.directory)
    assert record.key == old and old_dir.is_dir()

    await s.optouts.add([patient_ids(synth.data)[0]], actor="test")
    await _model_needed(s, token)  # the model fitted before the opt-out: never served again
    assert await _uses(s, aid) == (1, 0.0)
    await s.jobs.drain()
    jobs = await _fit_jobs(s)
    assert len(jobs) == 2 and all(j.state is JobState.DONE for j in jobs)
    new = next(j for j in jobs if j.id != first.id).result["model"]
    assert new != old
    await _served(s, token)
    delivered = [d for e, d in await _audit(s) if e == "dataplane.delivered"]
    assert [d["model"] for d in delivered] == [old, new]
    # The superseded model (fitted on the opted-out patient) is gone, files and record.
    assert [r.key for r in await models.for_dataset("ds")] == [new]
    assert not old_dir.exists()


async def test_more_patients_than_the_policy_allows_is_refused_untouched(synth: Synth) -> None:
    s = synth.services
    aid = await _agreement(s, SYNTHETIC, PATIENTS_LIMIT)
    token = await _transfer(s, aid, fmt=Format.SYNTHETIC)
    with pytest.raises(PolicyViolationError, match="patients") as refused:
        await _pull(s, token, {"patients": "1000"})
    assert refused.value.status == 403 and "1000" in refused.value.detail
    assert synth.source.calls == 0  # the FHIR data were never read
    assert await _fit_jobs(s) == []  # nor a fit started
    assert await _uses(s, aid) == (0, 0.0)
    [(event, details)] = await _audit(s)
    assert event == "dataplane.refused" and details["patients"] == 1000


async def test_expired_foreign_or_terminated_tokens_are_refused(
    synth: Synth, tmp_path: Path
) -> None:
    s = synth.services
    aid = await _agreement(s, SYNTHETIC, PATIENTS_LIMIT)
    cases: list[tuple[str, type[Exception], str]] = []
    expired = await _transfer(
        s, aid, tid="urn:uuid:old", fmt=Format.SYNTHETIC, issued=s.clock.now() - timedelta(days=1)
    )
    cases.append(("urn:uuid:old", AuthenticationError, "expired"))
    foreign = await _transfer(
        s,
        aid,
        tid="urn:uuid:foreign",
        fmt=Format.SYNTHETIC,
        keys=load_or_create_keys(tmp_path / "k"),
    )
    cases.append(("urn:uuid:foreign", AuthenticationError, "verify"))
    ended = await _transfer(
        s, aid, tid="urn:uuid:ended", fmt=Format.SYNTHETIC, state=TransferState.TERMINATED
    )
    cases.append(("urn:uuid:ended", ForbiddenError, "TERMINATED"))
    for (tid, error, words), token in zip(cases, (expired, foreign, ended), strict=True):
        with pytest.raises(error, match=words):
            await _pull(s, token, {"patients": "5"}, tid=tid)
    assert synth.source.calls == 0 and await _fit_jobs(s) == []


async def test_the_fit_runs_off_the_event_loop(synth: Synth) -> None:
    """While the fit job runs (in the pool), the event loop keeps answering: it sees the
    worker's stages go by in the job's row."""
    s = synth.services
    aid = await _agreement(s, SYNTHETIC, PATIENTS_LIMIT)
    token = await _transfer(s, aid, fmt=Format.SYNTHETIC)
    await _model_needed(s, token)
    loop = asyncio.create_task(s.jobs.run())
    seen: set[str] = set()
    try:
        while True:
            [job] = await _fit_jobs(s)
            if job.state.finished:
                break
            if job.state is JobState.RUNNING:
                seen.add(job.stage)
            await asyncio.sleep(0.05)
    finally:
        loop.cancel()
    assert job.state is JobState.DONE
    # Stages the worker reports while it fits: the loop was free to read them.
    assert seen & {"encoding", "fitting", "evaluating", "saving"}, seen


async def test_a_model_that_cannot_be_sampled_gives_the_use_back(synth: Synth) -> None:
    s = synth.services
    aid = await _agreement(s, SYNTHETIC, PATIENTS_LIMIT)
    token = await _transfer(s, aid, fmt=Format.SYNTHETIC)
    await _model_needed(s, token)
    await s.jobs.drain()
    [record] = await SqlSyntheticModelStore(s.engine).for_dataset("ds")
    (Path(record.directory) / "model.pkl").write_bytes(b"not a model")
    with pytest.raises(Exception) as failed:
        await _pull(s, token, {"patients": "5"})
    assert not isinstance(failed.value, ModelNotReadyError)
    assert await _uses(s, aid) == (0, 0.0)
    events = [e for e, _ in await _audit(s)]
    assert events[-2:] == ["dataplane.call", "dataplane.failed"]


async def test_broken_settings_are_the_hospitals_to_see(synth: Synth, tmp_path: Path) -> None:
    s = synth.services
    aid = await _agreement(s, SYNTHETIC, PATIENTS_LIMIT)
    token = await _transfer(s, aid, fmt=Format.SYNTHETIC)
    settings = tmp_path / "data" / "synthetic" / "settings" / "ds.json"
    settings.write_text('{"backend": "magic"}')
    await s.views.request("ds", DatasetScope.parse(None))
    await s.jobs.drain()  # the tables: the settings are what stands in the way
    with pytest.raises(UnavailableError) as unavailable:
        await _pull(s, token, {"patients": "5"})
    assert unavailable.value.status == 503 and unavailable.value.retry_after is None
    assert "settings are invalid" in unavailable.value.detail
    assert str(tmp_path) not in unavailable.value.detail and "magic" not in unavailable.value.detail
    assert await _uses(s, aid) == (0, 0.0) and await _fit_jobs(s) == []
