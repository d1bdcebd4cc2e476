"""The NDJSON file source's own rules: file naming, gzip, bad lines, version."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import pytest

from adapters.ndjson_source import NdjsonFileSource
from connector.errors import FhirSourceError
from tests.adapters.fhir.data import DATA_DIR, by_key, collect, expected, ids, keys


@pytest.fixture
def copy_dir(tmp_path: Path) -> Path:
    target = tmp_path / "fhir"
    shutil.copytree(DATA_DIR, target)
    return target


async def test_gzipped_and_split_files(copy_dir: Path) -> None:
    source_file = copy_dir / "Encounter.000.ndjson"
    lines = source_file.read_bytes().splitlines(keepends=True)
    half = len(lines) // 2
    with gzip.open(copy_dir / "Encounter.000.ndjson.gz", "wb") as out:
        out.writelines(lines[:half])
    (copy_dir / "Encounter.001.ndjson").write_bytes(b"\n".join(x.rstrip() for x in lines[half:]))
    source_file.unlink()
    source = NdjsonFileSource(copy_dir, batch_lines=100)
    got = await collect(source.search("Encounter"))
    assert keys(got) == ids(expected()["Encounter"])
    assert by_key(got) == by_key(expected()["Encounter"])
    assert await source.count("Encounter") == len(expected()["Encounter"])


async def test_non_resource_files_are_ignored(copy_dir: Path) -> None:
    (copy_dir / "Observation.000.ndjson.part").write_text("{not finished")
    (copy_dir / "notes.txt").write_text("hello")
    types = await NdjsonFileSource(copy_dir).resource_types()
    assert types == sorted(expected())  # log.ndjson, .part and .txt are not types


async def test_empty_file_is_not_a_type(copy_dir: Path) -> None:
    (copy_dir / "Observation.000.ndjson").write_text("\n")
    source = NdjsonFileSource(copy_dir)
    assert "Observation" not in await source.resource_types()
    assert await source.count("Observation") == 0


async def test_invalid_json_line_names_file_and_line(copy_dir: Path) -> None:
    with (copy_dir / "Patient.000.ndjson").open("a") as f:
        f.write('{"resourceType": "Patient", "id": "broken"\n')
    with pytest.raises(FhirSourceError, match=r"Patient\.000\.ndjson line 14: invalid JSON"):
        await collect(NdjsonFileSource(copy_dir).search("Patient"))


async def test_resource_of_another_type_is_refused(copy_dir: Path) -> None:
    with (copy_dir / "Patient.000.ndjson").open("a") as f:
        f.write('{"resourceType": "Observation", "id": "stray"}\n')
    with pytest.raises(FhirSourceError, match="not a Patient resource"):
        await collect(NdjsonFileSource(copy_dir).search("Patient"))


async def test_unsupported_parameter_lists_the_supported_ones() -> None:
    with pytest.raises(FhirSourceError, match="birthdate.*supported: _id, patient, subject"):
        await collect(NdjsonFileSource(DATA_DIR).search("Patient", {"birthdate": "2010"}))


async def test_bare_id_and_absolute_references(file_source: NdjsonFileSource) -> None:
    patient = expected()["Patient"][0]["id"]
    by_ref = await collect(file_source.search("Encounter", {"patient": f"Patient/{patient}"}))
    by_id = await collect(file_source.search("Encounter", {"patient": patient}))
    absolute = f"https://hospital.example/fhir/Patient/{patient}/_history/3"
    by_url = await collect(file_source.search("Encounter", {"subject": absolute}))
    assert by_ref and keys(by_ref) == keys(by_id) == keys(by_url)


async def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FhirSourceError, match="NDJSON directory does not exist") as caught:
        await NdjsonFileSource(tmp_path / "missing").resource_types()
    assert str(tmp_path / "missing") in str(caught.value)


async def test_version_changes_with_the_files(copy_dir: Path) -> None:
    source = NdjsonFileSource(copy_dir)
    before = await source.version()
    assert await source.version() == before
    path = copy_dir / "Patient.000.ndjson"
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    touched = await source.version()
    assert touched != before
    (copy_dir / "Device.000.ndjson").unlink()
    assert await source.version() not in (before, touched)


async def test_stopping_early_closes_the_file(copy_dir: Path) -> None:
    source = NdjsonFileSource(copy_dir, batch_lines=10)
    async for _ in source.search("Encounter"):
        break
    # nothing keeps the file open: it can be replaced at once (and on every platform)
    (copy_dir / "Encounter.000.ndjson").unlink()
    assert await source.count("Encounter") == 0
