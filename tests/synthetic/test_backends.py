"""The slower backends, one test each at a tiny size: they fit, sample and give valid FHIR."""

from __future__ import annotations

from pathlib import Path

import pytest
from fhir.resources.R4B import get_fhir_model_class

from connector.errors import BadRequestError
from connector.synthetic.config import Backend, SyntheticConfig
from connector.synthetic.generator import SdvGenerator
from tests.synthetic.flatviews import generated_views


@pytest.mark.parametrize("backend", [Backend.HMA, Backend.CTGAN, Backend.TVAE])
def test_backend_fits_and_samples_valid_fhir(backend: Backend, tmp_path: Path) -> None:
    views, _ = generated_views(tmp_path, patients=40, seed=4)
    config = SyntheticConfig(backend=backend, epochs=2, min_code_patients=2, holdout=0.0)
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
