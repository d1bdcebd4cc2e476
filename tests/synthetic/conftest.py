"""Shared, session-scoped fitted models (a fit takes seconds; tests read them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from connector.ports import FlatViews, SyntheticModelRecord
from connector.synthetic.config import SyntheticConfig
from connector.synthetic.generator import SdvGenerator
from tests.synthetic.flatviews import SYNTHEA, generated_views, read_ndjson, views_of


@dataclass
class Fitted:
    views: FlatViews
    resources: dict[str, list[dict[str, Any]]]
    generator: SdvGenerator
    record: SyntheticModelRecord
    stages: list[tuple[str, float]]


def _fit(
    views: FlatViews, resources: dict[str, Any], config: SyntheticConfig, root: Path
) -> Fitted:
    generator = SdvGenerator(config, root / "models")
    stages: list[tuple[str, float]] = []
    record = generator.fit(views, lambda stage, percent: stages.append((stage, percent)))
    return Fitted(views, resources, generator, record, stages)


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Fitted:
    """The fast default backend on 300 generated children (a general hospital)."""
    root = tmp_path_factory.mktemp("synthetic-generated")
    views, resources = generated_views(root, patients=300)
    config = SyntheticConfig(min_code_patients=3, prediction_target="195967001")
    return _fit(views, resources, config, root)


@pytest.fixture(scope="session")
def synthea(tmp_path_factory: pytest.TempPathFactory) -> Fitted:
    """The fast default backend on the 40 Synthea patients (adults and children)."""
    root = tmp_path_factory.mktemp("synthetic-synthea")
    views = views_of(SYNTHEA, root / "views", dataset_id="synthea", version="s1")
    config = SyntheticConfig(min_code_patients=3, holdout=0.2)
    return _fit(views, read_ndjson(SYNTHEA), config, root)
