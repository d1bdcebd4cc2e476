"""The ``synthetic-fit`` job: a dataset's synthesizer fitted on its current flat views.

A synthetic pull that finds no model for the views' data version (none yet, or the FHIR data,
the dataset's scope, the opt-outs or its settings changed since) asks for one here
(:meth:`SyntheticFits.request`) and is answered 503 with Retry-After. The job is keyed by
dataset and model key, so however many calls ask, one fit runs per data version; it is pinned
to this replica (the model's files live in its data directory), runs the fit in the job
queue's process pool (``generator.fit_worker``), never on the event loop, and reports its
stage and percentage (``/management/jobs``, ``phems-connector jobs watch``). Once a new model
is stored, the dataset's older models (fitted on data that may hold since opted-out patients)
are deleted, files and records.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

from connector.errors import BadRequestError, UnavailableError
from connector.fulfilment.cache import ViewCache
from connector.jobs import Job, JobContext, JobRunner, JobState
from connector.ports import FlatViews, SyntheticModelRecord, SyntheticModelStore
from connector.synthetic.config import SyntheticConfig, model_key, stored_config
from connector.synthetic.generator import SdvGenerator, fit_worker

log = logging.getLogger(__name__)

JOB_KIND = "synthetic-fit"


class SyntheticFits:
    """``root`` is ``<data dir>/synthetic``: ``settings/`` (each dataset's settings, see
    ``config.stored_config``) and ``models/`` (fitted models)."""

    def __init__(
        self, *, jobs: JobRunner, views: ViewCache, store: SyntheticModelStore, root: Path
    ) -> None:
        self.jobs = jobs
        self.views = views
        self.store = store
        self.root = root
        self.models_dir = root / "models"
        jobs.register(JOB_KIND, self._fit)

    def config(self, dataset_id: str) -> SyntheticConfig:
        """The dataset's kept settings; a file the hospital broke is logged for its operators,
        and the data user told only that the dataset's synthetic data are unavailable."""
        try:
            return stored_config(self.root, dataset_id)
        except BadRequestError as exc:
            log.error("dataset %s: %s", dataset_id, exc.detail)
            raise UnavailableError(
                f"dataset {dataset_id}: its synthetic data settings are invalid; the "
                "hospital's operators see why in its log"
            ) from None

    def generator(self, dataset_id: str) -> SdvGenerator:
        """The dataset's generator, with its kept settings (the defaults where none)."""
        return SdvGenerator(self.config(dataset_id), self.models_dir)

    async def request(self, dataset_id: str, views: FlatViews) -> str:
        """Make sure a fit for ``views`` is queued, running or done; a short description of
        its job for the data user (``UnavailableError`` without retry time if it failed)."""
        config = self.config(dataset_id)
        key = model_key(views, config)
        params = {
            "dataset": dataset_id,
            "views": views.version,
            "model": key,
            "settings": config.to_mapping(),
        }
        base = f"{JOB_KIND}:{self.jobs.node}:{dataset_id}:{key}"
        job = await self.jobs.enqueue(JOB_KIND, base, params, local=True)
        if job.state is JobState.DONE and not await self._served(dataset_id, key):
            # Fitted once, since removed (a cleaned data directory): fit again.
            job = await self.jobs.enqueue(JOB_KIND, f"{base}:{time.time_ns()}", params, local=True)
        if job.state is JobState.FAILED:
            raise UnavailableError(
                f"dataset {dataset_id}: fitting its synthetic data model failed (job {job.id}; "
                "the hospital's operators see why in its management API and can retry it)"
            )
        return f"job {job.id}: {job.stage}, {job.percent:.0f}%"

    async def _served(self, dataset_id: str, key: str) -> bool:
        record = await self.store.get(dataset_id, key)
        return record is not None and Path(record.directory, "model.pkl").exists()

    async def _fit(self, job: Job, context: JobContext) -> dict[str, Any]:
        dataset_id = str(job.params["dataset"])
        views = self.views.load(dataset_id, str(job.params["views"]))
        if views is None:  # the data changed again before the fit began: nothing to fit
            return {"model": None, "skipped": "the flattened tables of this version are gone"}
        await context.progress("reading", 0.0)
        record: SyntheticModelRecord = await context.run_cpu(
            fit_worker, views, dict(job.params["settings"]), str(self.models_dir)
        )
        await self.store.save(record)
        await self._prune(dataset_id, keep=record.key)
        return {
            "model": record.key,
            "accepted": record.accepted,
            "reason": record.reason,
            "patients": record.summary.get("patients"),
        }

    async def _prune(self, dataset_id: str, *, keep: str) -> None:
        for old in await self.store.for_dataset(dataset_id):
            if old.key == keep:
                continue
            await self.store.delete(dataset_id, old.key)
            directory = Path(old.directory)
            if directory.resolve().is_relative_to(self.models_dir.resolve()):
                shutil.rmtree(directory, ignore_errors=True)
            log.info("synthetic model %s of dataset %s deleted (superseded)", old.key, dataset_id)
