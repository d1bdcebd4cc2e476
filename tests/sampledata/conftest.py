"""Small generated hospitals shared by the sample data tests (generated once per session)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from connector.sampledata import PROFILES, generate

Resources = dict[str, list[dict[str, Any]]]
PATIENTS = 600
SEED = 11


def load(out: Path) -> Resources:
    found: Resources = {}
    for f in sorted(out.glob("*.ndjson")):
        rtype = f.name.split(".")[0]
        with f.open("rb") as fh:
            found.setdefault(rtype, []).extend(orjson.loads(line) for line in fh)
    return found


@pytest.fixture(scope="session")
def hospitals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Resources]]:
    """profile name -> (directory, resources by type) for every profile."""
    result: dict[str, tuple[Path, Resources]] = {}
    for name in PROFILES:
        out = tmp_path_factory.mktemp(f"sample-{name}")
        generate(out, patients=PATIENTS, seed=SEED, profile=name)
        result[name] = (out, load(out))
    return result


@pytest.fixture
def make(tmp_path: Path) -> Callable[..., tuple[Path, dict[str, int]]]:
    """Generate into a fresh sub-directory of tmp_path."""
    counter = iter(range(1000))

    def _make(**kwargs: Any) -> tuple[Path, dict[str, int]]:
        out = tmp_path / f"run{next(counter)}"
        kwargs.setdefault("patients", 150)
        kwargs.setdefault("seed", 3)
        kwargs.setdefault("profile", "general")
        return out, generate(out, **kwargs)

    return _make
