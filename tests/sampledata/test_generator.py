"""Determinism, file layout and argument checks of connector.sampledata.generate."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from connector.errors import BadRequestError
from connector.sampledata import RESOURCE_TYPES, generate, reference_date

from .conftest import load

Make = Callable[..., tuple[Path, dict[str, int]]]


def _files(out: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted(out.iterdir())}


def test_same_seed_gives_identical_bytes(make: Make) -> None:
    a, counts_a = make(seed=5, profile="picu")
    b, counts_b = make(seed=5, profile="picu")
    assert counts_a == counts_b
    files_a, files_b = _files(a), _files(b)
    assert list(files_a) == list(files_b)
    for name in files_a:
        assert files_a[name] == files_b[name], name


def test_different_seed_or_profile_gives_different_data(make: Make) -> None:
    a, _ = make(seed=5)
    b, _ = make(seed=6)
    c, _ = make(seed=5, profile="cardiac")
    for other in (b, c):
        assert (a / "Patient.000.ndjson").read_bytes() != (
            other / "Patient.000.ndjson"
        ).read_bytes()
        assert (a / "Observation.000.ndjson").read_bytes() != (
            other / "Observation.000.ndjson"
        ).read_bytes()
    # Ids of different seeds never collide (two hospitals can be loaded into one server).
    ids_a = {r["id"] for r in load(a)["Patient"]}
    ids_b = {r["id"] for r in load(b)["Patient"]}
    assert not ids_a & ids_b


def test_reference_date_comes_from_the_seed_only() -> None:
    assert reference_date(0) == reference_date(366)
    assert reference_date(1) != reference_date(2)
    assert reference_date(12345).year in (2024, 2025)


def test_counts_match_files_and_every_type_is_written(make: Make) -> None:
    out, counts = make(patients=200, profile="cardiac")
    assert set(counts) == set(RESOURCE_TYPES)
    assert counts["Patient"] == 200
    assert counts["Organization"] == 1
    loaded = load(out)
    assert {k: len(v) for k, v in loaded.items()} == counts
    for rtype, resources in loaded.items():
        ids = [r["id"] for r in resources]
        assert len(ids) == len(set(ids)), f"duplicate {rtype} ids"
        assert all(r["resourceType"] == rtype for r in resources)


def test_files_split_every_n_lines(make: Make) -> None:
    out, counts = make(patients=60, lines_per_file=100)
    obs_files = sorted(out.glob("Observation.*.ndjson"))
    assert [f.name for f in obs_files[:2]] == ["Observation.000.ndjson", "Observation.001.ndjson"]
    expected_files = -(-counts["Observation"] // 100)
    assert len(obs_files) == expected_files
    for f in obs_files[:-1]:
        assert f.read_bytes().count(b"\n") == 100
    assert sum(f.read_bytes().count(b"\n") for f in obs_files) == counts["Observation"]
    # Every line is one JSON object terminated by a newline.
    assert obs_files[0].read_bytes().endswith(b"}\n")


def test_regenerating_into_the_same_directory_replaces_old_parts(tmp_path: Path) -> None:
    generate(tmp_path, patients=60, seed=1, profile="general", lines_per_file=100)
    assert (tmp_path / "Observation.001.ndjson").exists()
    (tmp_path / "notes.txt").write_text("kept")
    counts = generate(tmp_path, patients=60, seed=1, profile="general")
    assert not (tmp_path / "Observation.001.ndjson").exists()
    assert (tmp_path / "notes.txt").read_text() == "kept"
    assert {k: len(v) for k, v in load(tmp_path).items()} == counts


def test_unknown_profile_and_bad_sizes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(
        BadRequestError, match="valid profiles: cardiac, general, haemophilia, picu"
    ):
        generate(tmp_path, patients=10, seed=1, profile="oncology")
    with pytest.raises(BadRequestError, match="at least 1"):
        generate(tmp_path, patients=0, seed=1, profile="general")
    with pytest.raises(ValueError, match="lines_per_file"):
        generate(tmp_path, patients=1, seed=1, profile="general", lines_per_file=0)
