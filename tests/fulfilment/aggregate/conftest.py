"""Flattened tables of generated children (varied: ``data.py``) and of the 40 Synthea patients,
built once per session, and the engine that reads them."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from connector.fulfilment.aggregate.engine import DuckDbEngine
from connector.ports import FlatViews
from connector.sampledata import generate
from tests.fulfilment.aggregate.data import Resources, varied
from tests.fulfilment.flat_views import build_flat_views, load_ndjson

REFERENCE = date(2024, 3, 15)  # ages are computed at this date in these tests


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Resources, FlatViews]:
    raw = tmp_path_factory.mktemp("agg-ndjson")
    generate(raw, patients=400, seed=7, profile="general")
    resources = varied(load_ndjson(raw))
    views = build_flat_views(resources, tmp_path_factory.mktemp("agg-views"), version="sample-1")
    return resources, views


@pytest.fixture(scope="session")
def synthea(
    tmp_path_factory: pytest.TempPathFactory, shared_dir: Path
) -> tuple[Resources, FlatViews]:
    resources = load_ndjson(shared_dir / "conformance" / "fhir" / "synthea-r4-40-patients")
    views = build_flat_views(resources, tmp_path_factory.mktemp("synthea-views"), version="syn-1")
    return resources, views


@pytest.fixture(scope="session")
def engine() -> DuckDbEngine:
    return DuckDbEngine(threads=1)
