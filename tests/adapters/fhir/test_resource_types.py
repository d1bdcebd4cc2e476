"""``resource_types()`` and ``version()`` see every type the data holds, on both sources: a real
server (sekmet) stores Goal and CareTeam without declaring them in its CapabilityStatement."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from adapters.fhir_rest import FhirRestSource
from adapters.ndjson_source import NdjsonFileSource
from tests.adapters.fhir.data import expected
from tests.adapters.fhir.sekmet import SekmetServer
from tests.conftest import free_port


@pytest.fixture
def own_sekmet(sekmet_exe: Path, tmp_path: Path) -> Iterator[SekmetServer]:
    server = SekmetServer(sekmet_exe, tmp_path / "sekmet", free_port())
    try:
        server.start()
        yield server
    finally:
        server.stop()


def write_data(directory: Path) -> dict[str, list[dict[str, object]]]:
    patient = expected()["Patient"][0]
    subject = {"reference": f"Patient/{patient['id']}"}
    data: dict[str, list[dict[str, object]]] = {
        "Patient": [patient],
        "Goal": [
            {
                "resourceType": "Goal",
                "id": "goal-1",
                "lifecycleStatus": "active",
                "description": {"text": "HbA1c below 7.5 %"},
                "subject": subject,
            }
        ],
        "CareTeam": [{"resourceType": "CareTeam", "id": "team-1", "status": "active",
                      "subject": subject}],
    }  # fmt: skip
    directory.mkdir()
    for rtype, resources in data.items():
        lines = "".join(json.dumps(r) + "\n" for r in resources)
        (directory / f"{rtype}.000.ndjson").write_text(lines)
    return data


async def test_undeclared_types_are_listed_and_versioned(
    own_sekmet: SekmetServer, tmp_path: Path
) -> None:
    declared = {
        r["type"]
        for rest in httpx.get(f"{own_sekmet.base_url}/metadata").json()["rest"]
        for r in rest["resource"]
    }
    assert "Goal" not in declared and "CareTeam" not in declared  # what makes this test bite
    rest = FhirRestSource(own_sekmet.base_url)
    try:
        own = set(await rest.resource_types())  # what the server holds of its own
        data = write_data(tmp_path / "fhir")
        own_sekmet.load_ndjson(tmp_path / "fhir")
        files = await NdjsonFileSource(tmp_path / "fhir").resource_types()
        assert files == ["CareTeam", "Goal", "Patient"]
        assert await rest.resource_types() == sorted(set(files) | own)
        assert await rest.count("Goal") == 1

        before = await rest.version()
        goal = data["Goal"][0] | {"lifecycleStatus": "completed"}
        put = httpx.put(f"{own_sekmet.base_url}/Goal/goal-1", json=goal)
        assert put.status_code == 200, put.text
        after_update = await rest.version()
        assert after_update != before
        deleted = httpx.delete(f"{own_sekmet.base_url}/CareTeam/team-1")
        assert deleted.status_code in (200, 204), deleted.text
        assert await rest.version() != after_update
        assert "CareTeam" not in await rest.resource_types()
    finally:
        await rest.aclose()
