"""``SdvGenerator``: the ``SyntheticGenerator`` port over SDV, and the fit job function.

The job queue runs :func:`fit_job` (a plain, picklable function) in a worker process and saves
the returned record in the ``SyntheticModelStore``. Sampling loads the model directory once per
process (a small cache) and yields whole patients in batches.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from connector.ports import FhirResource, FlatViews, ProgressCallback, SyntheticModelRecord
from connector.synthetic.config import SyntheticConfig, model_key

BATCH_PATIENTS = 500


class SdvGenerator:
    def __init__(self, config: SyntheticConfig, models_dir: Path) -> None:
        self.config = config
        self.models_dir = models_dir

    def model_key(self, views: FlatViews) -> str:
        return model_key(views, self.config)

    def fit(self, views: FlatViews, progress: ProgressCallback) -> SyntheticModelRecord:
        from connector.synthetic.model import fit

        result = fit(views, self.config, progress, models_dir=self.models_dir)
        return SyntheticModelRecord(
            dataset_id=result.dataset_id,
            version=result.version,
            key=result.key,
            backend=result.backend,
            directory=result.directory,
            fitted_at=datetime.fromisoformat(result.fitted_at),
            accepted=result.accepted,
            reason=result.reason,
            summary={**result.summary, "patients": result.patients, "seconds": result.seconds},
        )

    def sample(
        self, record: SyntheticModelRecord, patients: int, *, seed: int
    ) -> Iterator[list[FhirResource]]:
        from connector.synthetic.fhir import bundle_ref, resources

        model = _load(record.directory)
        done, batch = 0, 0
        while done < patients:
            n = min(BATCH_PATIENTS, patients - done)
            frames = model.sample_frames(n, seed=seed * 1_000_003 + batch)
            yield list(resources(frames, bundle_ref))
            done, batch = done + n, batch + 1

    def sample_frames(self, record: SyntheticModelRecord, patients: int, *, seed: int) -> Any:
        """The synthetic patients as flat-view frames (``tables.Frames``) rather than FHIR."""
        return _load(record.directory).sample_frames(patients, seed=seed)

    def report(self, record: SyntheticModelRecord) -> Mapping[str, Any]:
        data: dict[str, Any] = json.loads((Path(record.directory) / "report.json").read_text())
        return data

    def report_page(self, record: SyntheticModelRecord) -> bytes:
        return (Path(record.directory) / "report.html").read_bytes()


@lru_cache(maxsize=4)
def _load(directory: str) -> Any:
    from connector.synthetic.model import LoadedModel

    return LoadedModel.load(Path(directory))


def fit_job(
    views: FlatViews,
    settings: Mapping[str, Any],
    models_dir: str,
    progress: ProgressCallback,
) -> SyntheticModelRecord:
    """The long job: fit the dataset's synthesizer (``settings``: the dataset's synthetic
    settings, see ``SyntheticConfig``) under ``models_dir``; runs in a worker process."""
    generator = SdvGenerator(SyntheticConfig.from_mapping(settings), Path(models_dir))
    return generator.fit(views, progress)


def fit_worker(
    progress: ProgressCallback, views: FlatViews, settings: Mapping[str, Any], models_dir: str
) -> SyntheticModelRecord:
    """:func:`fit_job` in the argument order of ``JobContext.run_cpu`` (progress first)."""
    return fit_job(views, settings, models_dir, progress)
