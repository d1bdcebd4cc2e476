"""The slower backends, one test each at a tiny size: they fit, sample and give valid FHIR."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from fhir.resources.R4B import get_fhir_model_class

from connector.errors import BadRequestError
from connector.synthetic.config import Backend, SyntheticConfig
from connector.synthetic.generator import SdvGenerator
from tests.synthetic.flatviews import generated_views


@pytest.mark.parametrize("backend", [Backend.HMA, Backend.CTGAN, Backend.TVAE, Backend.AIM])
def test_backend_fits_and_samples_valid_fhir(backend: Backend, tmp_path: Path) -> None:
    """Three tables (patients, encounters, conditions) keep each fit to seconds of work."""
    views, _ = generated_views(tmp_path, patients=40, seed=4)
    kept = {name: views.tables[name] for name in ("patient", "encounter", "condition")}
    views = replace(views, tables=kept)
    config = SyntheticConfig(backend=backend, epochs=1, min_code_patients=2, holdout=0.0)
    generator = SdvGenerator(config, tmp_path / "models")
    record = generator.fit(views, lambda *_: None)
    assert record.backend == backend.value and record.accepted
    resources = [r for batch in generator.sample(record, 8, seed=1) for r in batch]
    assert sum(r["resourceType"] == "Patient" for r in resources) == 8
    assert any(r["resourceType"] == "Encounter" for r in resources)
    for resource in resources:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def test_settings_name_what_is_wrong() -> None:
    assert SyntheticConfig.from_mapping({"backend": "tvae"}).backend is Backend.TVAE
    assert SyntheticConfig.from_mapping(None) == SyntheticConfig()
    for bad, words in (
        ({"backend": "gan"}, "unknown backend"),
        ({"min_quality": 2}, "min_quality"),
        ({"holdout": 0.95}, "holdout"),
        ({"speed": "fast"}, "unknown field"),
    ):
        with pytest.raises(BadRequestError, match=words):
            SyntheticConfig.from_mapping(bad)


def test_aim_spends_exactly_its_budget(tmp_path: Path) -> None:
    """The zCDP budget of (epsilon, delta), split over the tables and divided by k^2 for a
    table with up to k rows of one patient, adds up to the whole budget (OpenDP's maps)."""
    from connector.synthetic.aim import AimTables, zcdp_rho
    from connector.synthetic.tables import encode, read_views

    views, _ = generated_views(tmp_path, patients=30, seed=6)
    tables, _ = encode(read_views(views), min_code_patients=2)
    tables = {name: tables[name] for name in ("patient", "condition")}
    config = SyntheticConfig(backend=Backend.AIM, epsilon=1.0, delta=1e-6, max_rows_per_patient=3)
    aim = AimTables(config)
    aim.fit(tables, lambda _: None)
    assert aim.rho_spent == pytest.approx(zcdp_rho(1.0, 1e-6), rel=1e-6)
    assert zcdp_rho(1.0, 1e-6) < 1.0**2 / 2  # zCDP implies (epsilon, delta)-DP, not the reverse
