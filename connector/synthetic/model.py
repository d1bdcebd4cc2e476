"""Fitting a dataset's synthesizer (a long job, in a worker process) and sampling from it.

:func:`fit` is a plain function over plain data (``FlatViews``, the settings as a mapping, a
progress callback, a directory), so the job queue can run it in a process pool. It writes one
model directory per (dataset, data version, settings) under ``models_dir`` and returns a
:class:`FitResult` for the store. A model directory holds the synthesizer (``model.pkl``), the
encoding (``encoding.json``), salted hashes of the real patients' records (``copies.json``, to
drop exact copies when sampling), the report (``report.json``, ``report.html``, PNGs) and the
settings; no patient row.

:func:`sample_frames` draws synthetic patients from a loaded model, dropping and resampling any
patient whose record equals a real one.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from connector.files import private_dir
from connector.ports import FlatViews
from connector.synthetic import reports
from connector.synthetic.backends import new_backend
from connector.synthetic.config import SyntheticConfig, model_key
from connector.synthetic.tables import (
    Encoding,
    Frames,
    decode,
    encode,
    keep_patients,
    read_views,
    signatures,
)

Progress = Callable[[str, float], None]  # (stage, percent 0..100)
EVALUATION_PATIENTS = 2000  # at most this many synthetic patients are drawn for the report


@dataclass(frozen=True)
class FitResult:
    """What the store keeps about a fitted model (``accepted``: it meets the hospital's
    minimum quality and privacy; a model that does not is never served)."""

    dataset_id: str
    version: str
    key: str
    backend: str
    directory: str
    fitted_at: str
    patients: int
    seconds: float
    accepted: bool
    reason: str | None
    summary: dict[str, Any]

    def to_mapping(self) -> dict[str, Any]:
        return asdict(self)


def fit(
    views: FlatViews,
    config: SyntheticConfig | Mapping[str, Any],
    progress: Progress,
    *,
    models_dir: Path,
) -> FitResult:
    """Fit the dataset's synthesizer, evaluate it, write its model directory. Runs for
    minutes on large data: call it from a worker process, never on the event loop."""
    started = time.monotonic()
    if not isinstance(config, SyntheticConfig):
        config = SyntheticConfig.from_mapping(config)
    key = model_key(views, config)
    final = models_dir / views.dataset_id / key
    work = models_dir / views.dataset_id / f".{key}.{os.getpid()}.partial"
    shutil.rmtree(work, ignore_errors=True)
    private_dir(work)
    progress("reading", 0.0)
    frames = read_views(views)
    rng = np.random.default_rng(config.seed)
    ids = frames["patient"]["patient_id"].to_numpy()
    held = (
        set(rng.choice(ids, size=int(len(ids) * config.holdout), replace=False))
        if len(ids)
        else set()
    )
    train = keep_patients(frames, set(ids) - held)
    holdout = keep_patients(frames, held)
    progress("encoding", 5.0)
    tables, encoding = encode(train, min_code_patients=config.min_code_patients)
    progress("fitting", 10.0)
    backend = new_backend(config)
    backend.fit(tables, lambda done: progress("fitting", 10.0 + 60.0 * done))
    progress("evaluating", 70.0)
    salt = os.urandom(16)
    real_hashes = set(signatures(frames, salt))
    model = LoadedModel(backend, encoding, salt, real_hashes)
    n_eval = max(1, min(EVALUATION_PATIENTS, len(train["patient"])))
    raw = decode(backend.sample(n_eval, encoding.rows_per_patient, config.seed + 1), encoding,
                 np.random.default_rng(config.seed + 1))  # fmt: skip
    copies = float(signatures(raw, salt).isin(real_hashes).mean()) if len(raw["patient"]) else 0.0
    synthetic = model.sample_frames(n_eval, seed=config.seed + 2)
    diagnoses = reports.top_diagnoses(train)
    report: dict[str, Any] = {
        "model": {
            "dataset_id": views.dataset_id,
            "data_version": views.version,
            "model": key,
            "backend": config.backend.value,
            "training_patients": len(train["patient"]),
            "held_out_patients": len(holdout["patient"]),
            "typical_age_days": [encoding.age_low, encoding.age_high],
            "rare_codes_left_out": encoding.dropped_codes,
        },
        "quality": reports.quality(train, synthetic, diagnoses),
    }
    progress("evaluating", 80.0)
    report["privacy"] = reports.privacy(train, holdout, synthetic, diagnoses, copies)
    progress("evaluating", 88.0)
    report["utility"] = reports.utility(train, holdout, synthetic, diagnoses,
                                        target=config.prediction_target)  # fmt: skip
    accepted, reason = _accept(report, config)
    report["model"]["accepted"], report["model"]["reason"] = accepted, reason
    progress("saving", 95.0)
    reports.render(report, train, synthetic, work)
    model.save(work)
    (work / "report.json").write_text(json.dumps(report, indent=2, default=str))
    (work / "settings.json").write_text(json.dumps(config.to_mapping(), indent=2))
    shutil.rmtree(final, ignore_errors=True)
    work.rename(final)
    progress("done", 100.0)
    return FitResult(
        dataset_id=views.dataset_id,
        version=views.version,
        key=key,
        backend=config.backend.value,
        directory=str(final),
        fitted_at=datetime.now(UTC).isoformat(),
        patients=len(train["patient"]),
        seconds=round(time.monotonic() - started, 2),
        accepted=accepted,
        reason=reason,
        summary={
            "quality": report["quality"]["score"],
            "dcr_overfitting_protection": report["privacy"].get("dcr_overfitting_protection"),
            "disclosure_protection": report["privacy"].get("disclosure_protection"),
            "exact_copy_rate_before_resampling": copies,
        },
    )


def _accept(report: Mapping[str, Any], config: SyntheticConfig) -> tuple[bool, str | None]:
    checks = (
        ("quality score", report["quality"]["score"], config.min_quality),
        ("DCR overfitting protection", report["privacy"].get("dcr_overfitting_protection"),
         config.min_dcr_protection),
        ("disclosure protection", report["privacy"].get("disclosure_protection"),
         config.min_disclosure_protection),
    )  # fmt: skip
    for name, value, minimum in checks:
        if minimum > 0 and (value is None or value < minimum):
            shown = "not measured" if value is None else f"{value:.3f}"
            return False, f"{name} {shown} is below the minimum {minimum}"
    return True, None


class LoadedModel:
    """A fitted model in memory, ready to sample."""

    def __init__(self, backend: Any, encoding: Encoding, salt: bytes, hashes: set[str]) -> None:
        self.backend = backend
        self.encoding = encoding
        self.salt = salt
        self.hashes = hashes

    def save(self, directory: Path) -> None:
        import cloudpickle

        (directory / "model.pkl").write_bytes(cloudpickle.dumps(self.backend))
        (directory / "encoding.json").write_text(json.dumps(self.encoding.to_json()))
        copies = {"salt": self.salt.hex(), "hashes": sorted(self.hashes)}
        (directory / "copies.json").write_text(json.dumps(copies))

    @classmethod
    def load(cls, directory: Path) -> LoadedModel:
        import pickle

        backend = pickle.loads((directory / "model.pkl").read_bytes())  # our own file
        encoding = Encoding.from_json(json.loads((directory / "encoding.json").read_text()))
        copies = json.loads((directory / "copies.json").read_text())
        return cls(backend, encoding, bytes.fromhex(copies["salt"]), set(copies["hashes"]))

    def sample_frames(self, patients: int, *, seed: int) -> Frames:
        """``patients`` synthetic patients (flat-view frames), none an exact copy of a real
        patient: copies are dropped and more are drawn."""
        kept: list[Frames] = []
        have, attempt = 0, 0
        while have < patients:
            want = patients - have
            draw = want + max(5, want // 10) if attempt else want
            rng = np.random.default_rng([seed, attempt])
            sampled = self.backend.sample(
                draw, self.encoding.rows_per_patient, seed * 7919 + attempt
            )
            frames = decode(sampled, self.encoding, rng)
            fresh = frames["patient"]["patient_id"][
                ~signatures(frames, self.salt).isin(self.hashes).to_numpy()
            ]
            chosen = set(fresh.iloc[:want])
            kept.append(keep_patients(frames, chosen))
            have += len(chosen)
            attempt += 1
            if attempt > 50:
                raise RuntimeError("the model keeps producing copies of real patients")
        return {
            name: pd.concat([k[name] for k in kept if name in k], ignore_index=True)
            for name in kept[0]
        }
