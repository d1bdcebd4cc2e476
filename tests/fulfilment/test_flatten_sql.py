"""The view cache's two ways of flattening give the same tables: the views' SQL form run by
DuckDB over the NDJSON files (the SQL-on-FHIR adapter's ``ViewSql``) and the runner alone.

Every table, with its types and every row, over generated data (with Consents denying research
and a Group), the 40 Synthea patients and the hand-made edge cases, with a scope and opt-outs.
Files of a shape the SQL cannot represent exactly fall back to the runner for their resource
type, and a broken file gives the runner's error either way.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import duckdb
import pytest

from adapters.sof.port import SqlOnFhirRunner
from connector.errors import FhirSourceError
from connector.fulfilment.flatten import build_flat_views
from connector.fulfilment.views import TABLES
from tests.adapters.sof.test_sof_sql import EDGE, SHARED, _write
from tests.fulfilment.conftest import consent, patient_ids, write_ndjson

NOW = "2026-06-01T00:00:00+00:00"
FALLBACK = "did not suit the views' SQL form"


class RunnerOnly:
    """The SQL-on-FHIR runner without its SQL form (as a runner that has none is used)."""

    def __init__(self) -> None:
        self._inner = SqlOnFhirRunner()

    def compile(
        self, view: Mapping[str, Any]
    ) -> tuple[list[tuple[str, str | None]], Callable[[dict[str, Any]], list[tuple[Any, ...]]]]:
        return self._inner.compile(view)


def _files(directory: Path) -> dict[str, list[str]]:
    files: dict[str, list[str]] = {}
    for path in sorted(directory.iterdir()):
        if ".ndjson" in path.name and not path.name.startswith("log."):
            files.setdefault(path.name.split(".")[0], []).append(str(path))
    return files


def _build(
    runner: Any, data: Path, out: Path, scope: dict[str, Any], optouts: list[str]
) -> dict[str, Any]:
    counts = build_flat_views(
        lambda s, p: None, runner, _files(data), scope, optouts, str(out), NOW
    )
    return counts


def _table(path: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    con = duckdb.connect()
    schema = con.execute(f"DESCRIBE SELECT * FROM '{path}'").fetchall()
    return schema, con.execute(f"SELECT * FROM '{path}' ORDER BY ALL").fetchall()


def _same_tables(data: Path, tmp_path: Path, scope: dict[str, Any], optouts: list[str]) -> int:
    with_sql = _build(SqlOnFhirRunner(), data, tmp_path / "sql", scope, optouts)
    by_runner = _build(RunnerOnly(), data, tmp_path / "runner", scope, optouts)
    assert with_sql == by_runner
    for table in TABLES:
        name = f"{table}.parquet"
        assert _table(tmp_path / "sql" / name) == _table(tmp_path / "runner" / name), table
    return sum(with_sql.values())


@pytest.fixture
def generated(sample_files: Path, tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(sample_files, data)
    ids = patient_ids(data)
    write_ndjson(
        data / "Consent.000.ndjson",
        [consent("c1", ids[3]), consent("c2", ids[4], status="inactive")],
    )
    members = [{"entity": {"reference": f"Patient/{p}"}} for p in ids[:120]]
    members[5]["inactive"] = True
    write_ndjson(
        data / "Group.000.ndjson", [{"resourceType": "Group", "id": "reg", "member": members}]
    )
    return data


@pytest.mark.parametrize(
    "scope",
    [
        {},
        {
            "period": {"start": "2020-01-01", "end": "2023-12-31"},
            "group": "reg",
            "resourceTypes": ["Condition", "Observation", "Encounter"],
        },
    ],
)
def test_generated_data_give_the_same_tables(
    generated: Path, tmp_path: Path, scope: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "connector.fulfilment.flatten")
    rows = _same_tables(generated, tmp_path, scope, patient_ids(generated)[7:9])
    assert rows > 5000
    assert FALLBACK not in caplog.text  # the SQL form ran: no resource type fell back


def test_synthea_patients_give_the_same_tables(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "connector.fulfilment.flatten")
    assert _same_tables(SHARED / "synthea-r4-40-patients", tmp_path, {}, []) > 10000
    assert FALLBACK not in caplog.text


def test_edge_cases_give_the_same_tables(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "connector.fulfilment.flatten")
    data = _write(tmp_path / "edges", EDGE)
    assert _same_tables(data, tmp_path, {}, []) > 30
    assert FALLBACK not in caplog.text


def test_a_file_the_sql_cannot_represent_falls_back_to_the_runner(
    generated: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An R5-shaped Encounter (``class`` a list), strings holding a number, a boolean and an
    object: the Encounter views run with the runner, the rest in SQL, and the tables are the
    same as the runner's alone (non-strings in string columns as their JSON text)."""
    caplog.set_level(logging.INFO, "connector.fulfilment.flatten")
    patient = f"Patient/{patient_ids(generated)[0]}"
    odd = [
        {"resourceType": "Encounter", "id": "r5", "subject": {"reference": patient},
         "class": [{"code": "IMP"}], "period": {"start": "2021-01-01"}},
        {"resourceType": "Encounter", "id": "n", "subject": {"reference": patient},
         "status": 5, "serviceType": {"coding": [{"code": True}]},
         "hospitalization": {"dischargeDisposition": {"coding": [{"code": {"x": 1.5}}]}}},
    ]  # fmt: skip
    with (generated / "Encounter.000.ndjson").open("a") as out:
        out.writelines(json.dumps(r) + "\n" for r in odd)
    _same_tables(generated, tmp_path, {}, [])
    assert caplog.text.count(FALLBACK) == 1  # for Encounter alone
    assert "Encounter files" in caplog.text and "1.5" not in caplog.text
    con = duckdb.connect()
    rows = con.execute(
        "SELECT status, service_type_code, discharge_code "
        f"FROM '{tmp_path / 'sql' / 'encounter.parquet'}' WHERE encounter_id = 'n'"
    ).fetchall()
    assert rows == [("5", "true", '{"x":1.5}')]


@pytest.mark.parametrize("runner", [SqlOnFhirRunner(), RunnerOnly()], ids=["sql", "runner"])
def test_a_broken_line_is_the_same_error_either_way(
    generated: Path, tmp_path: Path, runner: Any
) -> None:
    with (generated / "Condition.000.ndjson").open("a") as out:
        out.write('{"resourceType": "Condition", "id": \n')
    with pytest.raises(FhirSourceError, match=r"Condition\.000\.ndjson line \d+: invalid JSON"):
        _build(runner, generated, tmp_path / "out", {}, [])
    (generated / "Condition.000.ndjson").write_text(
        json.dumps({"resourceType": "Patient", "id": "x"}) + "\n"
    )
    with pytest.raises(FhirSourceError, match="line 1: not a Condition resource"):
        _build(runner, generated, tmp_path / "out", {}, [])
    assert not list(tmp_path.glob("out*"))
