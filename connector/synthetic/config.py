"""A dataset's synthetic-data settings, set by the hospital (plain data: no pandas, no SDV).

Kept per dataset in the data directory (``<data dir>/synthetic/settings/<dataset>.json``,
written by ``phems-connector synthetic fit --settings/--backend``; the defaults where there is
none) and read with :func:`SyntheticConfig.from_mapping`, which names a bad field instead of
ignoring it. The minimum levels decide whether a fitted model is served at all
(``accepted``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from connector.errors import BadRequestError
from connector.ports import FlatViews


class Backend(StrEnum):
    """The synthesizer behind a model. Sizes each handles on a 2-core machine:
    docs/synthetic.md."""

    GAUSSIAN_COPULA = "gaussian_copula"  # SDV, one copula per table (fast default)
    HMA = "hma"  # SDV hierarchical model: a star schema around the patient table
    CTGAN = "ctgan"  # SDV CTGAN (a GAN per table)
    TVAE = "tvae"  # SDV TVAE (a variational autoencoder per table)
    AIM = "aim"  # AIM, differentially private (mbi + OpenDP; open licences, no SDV)


@dataclass(frozen=True)
class SyntheticConfig:
    """How a dataset's synthesizer is fitted and when it is good enough to serve.

    ``backend`` the synthesizer; ``epochs`` training epochs of CTGAN / TVAE; ``epsilon`` and
    ``delta`` the AIM backend's patient-level (epsilon, delta)-DP guarantee, with at most
    ``max_rows_per_patient`` rows of one patient in a table (see connector/synthetic/aim.py
    for what the guarantee covers); ``holdout`` the
    share of patients kept out of the fit to measure distance to closest record against (0
    turns that check off);
    ``min_code_patients`` codes (diagnoses, procedures, observations, medications) recorded
    for fewer patients are left out of the fit, since rare codes identify people;
    ``min_quality`` the lowest SDMetrics overall quality score (0..1) served;
    ``min_dcr_protection`` the lowest SDMetrics DCR overfitting protection (0..1; 1: synthetic
    patients are no closer to the training patients than unseen ones) served;
    ``min_disclosure_protection`` the lowest SDMetrics disclosure protection of diagnoses given
    age and sex (0..1) served; ``prediction_target`` a condition code (``system|code`` or a
    bare code) whose presence the utility report predicts, train-on-synthetic against
    train-on-real; ``seed`` makes fitting repeatable.
    """

    backend: Backend = Backend.GAUSSIAN_COPULA
    epochs: int = 100
    epsilon: float = 3.0
    delta: float = 1e-6
    max_rows_per_patient: int = 20
    holdout: float = 0.2
    min_code_patients: int = 5
    min_quality: float = 0.0
    min_dcr_protection: float = 0.0
    min_disclosure_protection: float = 0.0
    prediction_target: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if not 0.0 <= self.holdout < 0.9:
            problems.append(f"holdout must be in [0, 0.9), got {self.holdout}")
        for name in ("min_quality", "min_dcr_protection", "min_disclosure_protection"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                problems.append(f"{name} must be in [0, 1], got {value}")
        if self.epochs < 1:
            problems.append(f"epochs must be at least 1, got {self.epochs}")
        if self.epsilon <= 0 or not 0 < self.delta < 1:
            problems.append(
                f"epsilon must be > 0 and delta in (0, 1), got {self.epsilon}, {self.delta}"
            )
        if self.max_rows_per_patient < 1:
            problems.append("max_rows_per_patient must be at least 1")
        if self.min_code_patients < 1:
            problems.append(f"min_code_patients must be at least 1, got {self.min_code_patients}")
        if problems:
            raise BadRequestError("synthetic settings: " + "; ".join(problems))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> SyntheticConfig:
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise BadRequestError(
                f"synthetic settings: unknown field(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        if "backend" in data:
            try:
                data["backend"] = Backend(data["backend"])
            except ValueError:
                raise BadRequestError(
                    f"synthetic settings: unknown backend {data['backend']!r}; "
                    f"valid: {', '.join(b.value for b in Backend)}"
                ) from None
        try:
            return cls(**data)
        except TypeError as exc:
            raise BadRequestError(f"synthetic settings: {exc}") from None

    def to_mapping(self) -> dict[str, Any]:
        out = asdict(self)
        out["backend"] = self.backend.value
        return out


def model_key(views: FlatViews, config: SyntheticConfig) -> str:
    """Names a model: the data version and the settings it was fitted with (so a model fitted
    before the FHIR data, the dataset's scope, the opt-outs or the settings changed is never
    the one asked for)."""
    settings = json.dumps(config.to_mapping(), sort_keys=True)
    digest = hashlib.sha256(f"{views.version}\0{settings}".encode()).hexdigest()[:12]
    return f"{views.version}-{config.backend.value}-{digest}"


def settings_file(root: Path, dataset_id: str) -> Path:
    """Where a dataset's synthetic settings are kept (``root``: ``<data dir>/synthetic``)."""
    return root / "settings" / f"{dataset_id}.json"


def stored_config(root: Path, dataset_id: str) -> SyntheticConfig:
    """The dataset's kept settings, or the defaults; ``BadRequestError`` names a bad file."""
    path = settings_file(root, dataset_id)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return SyntheticConfig()
    except OSError as exc:
        raise BadRequestError(f"synthetic settings: cannot read {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError:
        raise BadRequestError(f"synthetic settings: {path} is not JSON") from None
    if not isinstance(data, dict):
        raise BadRequestError(f"synthetic settings: {path} is not a JSON object")
    return SyntheticConfig.from_mapping(data)
