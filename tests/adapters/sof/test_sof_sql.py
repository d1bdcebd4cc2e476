"""The SQL form of ViewDefinitions (``adapters.sof.sql``) against the runner.

Every view of the connector's flattened tables compiles, and over generated data, the 40
Synthea patients, the 10-patient bulk export and hand-made edge cases (references of every
form, partial dates, choice elements, empty and missing lists, nulls inside lists, iif
fallbacks, Consents and Groups) its query gives exactly the runner's rows. The conformance
cases it compiles give the suite's rows. Data of another shape than R4's, or that the runner
refuses, make the query fail (so the caller runs the runner) instead of giving other rows.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from adapters.sof import compile_view
from adapters.sof.sql import view_sql
from connector.fulfilment.views import CODING_VIEWS, SCOPE_VIEWS, VIEWS
from connector.sampledata import generate
from tests.adapters.sof.test_sof_conformance import CASES, _bag

SHARED = Path(__file__).resolve().parents[4] / "shared" / "conformance" / "fhir"
CONNECTOR_VIEWS: dict[str, dict[str, Any]] = {
    **VIEWS,
    **{f"coding_{t}": v for t, v in CODING_VIEWS.items()},
    **SCOPE_VIEWS,
}
P = "Patient/p1"


def _ref(text: str) -> dict[str, str]:
    return {"reference": text}


def _cc(*codings: dict[str, Any] | None, text: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"coding": list(codings)}
    if text is not None:
        out["text"] = text
    return out


SNOMED = "http://snomed.info/sct"
# Valid R4 (plus nulls inside lists, which the runner skips), meant to hit every branch.
EDGE: list[dict[str, Any]] = [
    {"resourceType": "Patient", "id": "p1", "birthDate": "2012", "gender": "female"},
    {"resourceType": "Patient", "id": "p2", "birthDate": "2012-03", "deceasedDateTime": "2020"},
    {"resourceType": "Patient", "id": "p3", "deceasedBoolean": True},
    {"resourceType": "Patient", "id": "A-b.9" + "x" * 59},
    {"resourceType": "Patient"},
    *[
        {
            "resourceType": "Encounter",
            "id": f"e{i}",
            "status": "finished",
            "subject": subject,
            "encounter": _ref("Encounter/x"),
        }
        for i, subject in enumerate(
            [
                _ref("Patient/p1"),
                _ref("http://example.org/fhir/Patient/p1"),
                _ref("https://example.org/fhir/Patient/p1/_history/3"),
                _ref("Patient/p1/_history/3"),
                _ref("urn:uuid:6f2c4a1e-0000-4000-8000-000000000001"),
                _ref("Group/g1"),
                _ref("#contained"),
                _ref("Patient/"),
                _ref("Patient/ä"),
                _ref("Patient/" + "a" * 64),
                _ref("Patient/" + "a" * 65),
                _ref("patient/p1"),
                _ref("Patient/p 1"),
                _ref("Patient/p1\n"),
                _ref("Patient/--"),
                _ref("P/p1"),
                _ref("Foo/Patient/p1"),
                _ref("Patient//p1"),
                {"display": "no reference"},
                {},
                None,
            ]
        )
    ],
    {
        "resourceType": "Encounter",
        "id": "e-full",
        "status": "in-progress",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "serviceType": _cc(None, {"code": "x"}),
        "subject": _ref(P),
        "period": {"start": "2020-01-01T10:00:00+01:00"},
        "hospitalization": {"dischargeDisposition": _cc({"code": "home"})},
    },
    {"resourceType": "Encounter", "id": "e-empty", "serviceType": {"coding": []}, "period": {}},
    {
        "resourceType": "Condition",
        "id": "c1",
        "subject": _ref(P),
        "encounter": _ref("Encounter/e-full"),
        "code": _cc({"system": SNOMED, "code": "195967001"}, {"display": "second"}, text="t"),
        "onsetPeriod": {"start": "2019-05", "end": "2019-06"},
        "abatementDateTime": "2020-01-01",
        "recordedDate": "2019-05-02",
        "clinicalStatus": _cc({"code": "active"}),
        "verificationStatus": _cc({"code": "confirmed"}),
        "severity": _cc({"system": SNOMED, "code": "24484000", "display": "Severe"}),
    },
    {
        "resourceType": "Condition",
        "id": "c2",
        "subject": _ref(P),
        "code": _cc(None, {"system": SNOMED, "code": "1", "display": "d"}),
        "onsetString": "childhood",
        "abatementPeriod": {"end": "2020"},
    },
    {"resourceType": "Condition", "id": "c3", "subject": _ref(P), "code": {"text": "only"}},
    {"resourceType": "Condition", "id": "c4", "subject": _ref(P), "code": {"coding": []}},
    {"resourceType": "Condition", "id": "c5", "subject": _ref(P)},
    {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "subject": _ref(P),
        "category": [_cc({"code": "vital-signs"}), _cc({"code": "laboratory"})],
        "code": _cc({"system": "http://loinc.org", "code": "29463-7", "display": "Weight"}),
        "effectiveDateTime": "2020-02-02T02:02:02Z",
        "valueQuantity": {"value": 20.5, "unit": "kg", "code": "kg"},
        "interpretation": [_cc({"code": "H"}), _cc({"code": "L"})],
        "method": _cc({"system": SNOMED, "code": "m"}),
        "component": [
            {
                "code": _cc({"system": "http://loinc.org", "code": "8480-6"}),
                "valueQuantity": {"value": 120, "code": "mm[Hg]"},
            },
            {"code": _cc({"code": "x"})},
            None,
        ],
    },
    {
        "resourceType": "Observation",
        "id": "o2",
        "subject": _ref(P),
        "code": _cc({"code": "c"}),
        "effectivePeriod": {"start": "2021-01-01", "end": "2021-01-02"},
        "valueCodeableConcept": _cc({"system": SNOMED, "code": "260385009"}),
        "category": [None, _cc(None, {"code": "survey"})],
        "component": [],
    },
    {
        "resourceType": "Observation",
        "id": "o3",
        "subject": _ref(P),
        "code": _cc({"code": "c"}, text="text"),
        "effectiveInstant": "2021-01-01T00:00:00Z",
        "valueString": "a string",
        "valueQuantity": {"value": 0, "unit": "{score}", "code": "{score}"},
    },
    {"resourceType": "Observation", "id": "o4", "valueQuantity": {"value": 1e-7}},
    {
        "resourceType": "Procedure",
        "id": "pr1",
        "subject": _ref(P),
        "status": "completed",
        "code": _cc({"system": SNOMED, "code": "80146002"}),
        "performedPeriod": {"start": "2019-01-01T08:00:00Z", "end": "2019-01-01T09:00:00Z"},
    },
    {"resourceType": "Procedure", "id": "pr2", "subject": _ref(P), "performedString": "once"},
    {
        "resourceType": "MedicationRequest",
        "id": "mr1",
        "status": "active",
        "intent": "order",
        "subject": _ref(P),
        "medicationCodeableConcept": _cc(
            {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "1"}
        ),
        "authoredOn": "2020-03-03",
        "dosageInstruction": [
            {
                "route": {"text": "oral"},
                "doseAndRate": [{"doseQuantity": {"value": 5, "code": "mg"}}, {"doseRange": {}}],
            },
            {"route": {"text": "iv"}},
        ],
    },
    {
        "resourceType": "MedicationRequest",
        "id": "mr2",
        "subject": _ref(P),
        "medicationReference": _ref("Medication/m1"),
        "dosageInstruction": [{"doseAndRate": [{"doseRange": {"low": {"value": 1}}}]}],
    },
    {
        "resourceType": "MedicationAdministration",
        "id": "ma1",
        "status": "completed",
        "subject": _ref(P),
        "context": _ref("Encounter/e-full"),
        "medicationCodeableConcept": _cc({"code": "m"}, text="med"),
        "effectivePeriod": {"start": "2020-04-04T04:04:04Z"},
        "dosage": {"dose": {"value": 2.5, "code": "mL"}},
    },
    {
        "resourceType": "MedicationAdministration",
        "id": "ma2",
        "subject": _ref(P),
        "effectiveDateTime": "2020-04",
        "dosage": {"text": "no dose"},
    },
    {
        "resourceType": "Consent",
        "id": "k1",
        "status": "active",
        "scope": _cc(
            {"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "research"},
            {"code": "other"},
        ),
        "patient": _ref("Patient/p3"),
        "provision": {"type": "deny", "period": {"start": "2020-01-01", "end": "2030"}},
    },
    {"resourceType": "Consent", "id": "k2", "status": "draft", "scope": {"text": "none"}},
    {"resourceType": "Consent", "id": "k3", "scope": {"coding": [None]}, "patient": _ref(P)},
    {
        "resourceType": "Group",
        "id": "g1",
        "member": [
            {"entity": _ref(P)},
            {"entity": _ref("Patient/p2"), "inactive": True},
            {"entity": _ref("Device/d1"), "inactive": False},
            {"period": {"start": "2020"}},
        ],
    },
    {"resourceType": "Group", "id": "g2"},
]


def _write(directory: Path, resources: list[dict[str, Any]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    by_type: dict[str, list[bytes]] = {}
    for resource in resources:
        by_type.setdefault(resource["resourceType"], []).append(orjson.dumps(resource))
    for rtype, lines in by_type.items():
        (directory / f"{rtype}.000.ndjson").write_bytes(b"\n".join(lines) + b"\n")
    return directory


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sql-views")
    found = {
        "synthea-40": SHARED / "synthea-r4-40-patients",
        "bulk-10": SHARED / "bulk-ndjson-10-patients",
        "edges": _write(root / "edges", EDGE),
    }
    for profile in ("general", "picu"):
        generate(root / profile, patients=80, seed=11, profile=profile)
        found[f"generated-{profile}"] = root / profile
    return found


def _files(directory: Path, rtype: str) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.startswith(f"{rtype}."))


def _resources(paths: list[Path]) -> list[dict[str, Any]]:
    out = []
    for path in paths:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        out.extend(orjson.loads(line) for line in data.splitlines() if line.strip())
    return out


def _runner_rows(view: dict[str, Any], paths: list[Path]) -> Counter[tuple[Any, ...]]:
    compiled = compile_view(view)
    decimal = [c.type == "decimal" for c in compiled.columns]
    rows = [r for resource in _resources(paths) for r in compiled.process(resource)]
    return Counter(
        tuple(float(v) if d and v is not None else v for v, d in zip(r, decimal, strict=True))
        for r in rows
    )


def _sql_rows(view: dict[str, Any], paths: list[Path]) -> Counter[tuple[Any, ...]]:
    sql = view_sql(view, [str(p) for p in paths])
    assert sql is not None
    return Counter(duckdb.connect().execute(sql).fetchall())


def test_every_connector_view_compiles() -> None:
    for name, view in CONNECTOR_VIEWS.items():
        assert view_sql(view, ["x.ndjson"]) is not None, name


@pytest.mark.parametrize(
    "dataset", ["generated-general", "generated-picu", "synthea-40", "bulk-10", "edges"]
)
def test_sql_gives_the_runners_rows(datasets: dict[str, Path], dataset: str) -> None:
    compared = 0
    for name, view in CONNECTOR_VIEWS.items():
        paths = _files(datasets[dataset], view["resource"])
        if not paths:
            continue
        expected = _runner_rows(view, paths)
        assert _sql_rows(view, paths) == expected, name
        compared += sum(expected.values())
    assert compared > 0


def test_edge_cases_reach_every_table(datasets: dict[str, Path]) -> None:
    """The hand-made data are not vacuous: each view gets rows, references resolve and not."""
    for name, view in CONNECTOR_VIEWS.items():
        assert _runner_rows(view, _files(datasets["edges"], view["resource"])), name
    keys = Counter(
        row[1] for row in _runner_rows(VIEWS["encounter"], _files(datasets["edges"], "Encounter"))
    )
    # Patient/p1 plain, absolute, versioned (twice), with a final newline, under Foo/, e-full
    assert keys["p1"] == 7 and keys[None] > 10 and keys["a" * 64] == 1


@pytest.mark.parametrize(
    ("resource", "why"),
    [
        ({"resourceType": "Encounter", "id": "1", "class": [{"code": "IMP"}]}, "R5 shape"),
        ({"resourceType": "Encounter", "id": "1", "subject": "Patient/1"}, "string for object"),
        ({"resourceType": "Encounter", "id": "1", "status": {"code": "x"}}, "object for string"),
        ({"resourceType": "Encounter", "id": "1", "status": ["a", "b"]}, "list for string"),
        ({"resourceType": "Observation", "id": "1", "valueQuantity": {"value": "x"}}, "text"),
        ({"resourceType": "Condition", "id": "1"}, "another resource type"),
    ],
)
def test_data_of_another_shape_fails_the_query(
    tmp_path: Path, resource: dict[str, Any], why: str
) -> None:
    rtype = "Observation" if resource["resourceType"] == "Observation" else "Encounter"
    path = tmp_path / f"{rtype}.ndjson"
    good = {"resourceType": rtype, "id": "ok"}
    path.write_text(json.dumps(good) + "\n" + json.dumps(resource) + "\n")
    view = VIEWS[rtype.lower()]
    with pytest.raises(duckdb.Error):
        _sql_rows(view, [path])


def test_several_values_in_a_single_column_fail_the_query(tmp_path: Path) -> None:
    view = {
        "resource": "Patient",
        "select": [{"column": [{"name": "family", "path": "name.family"}]}],
    }
    path = tmp_path / "Patient.ndjson"
    path.write_text(
        json.dumps({"resourceType": "Patient", "name": [{"family": "A"}]})
        + "\n"
        + json.dumps({"resourceType": "Patient", "name": [{"family": "A"}, {"family": "B"}]})
        + "\n"
    )
    with pytest.raises(duckdb.Error, match="not a collection"):
        _sql_rows(view, [path])
    path.write_text(json.dumps({"resourceType": "Patient", "name": [{"family": "A"}, {}]}) + "\n")
    assert _sql_rows(view, [path]) == Counter({("A",): 1}) == _runner_rows(view, [path])


def test_invalid_json_fails_the_query(tmp_path: Path) -> None:
    path = tmp_path / "Patient.ndjson"
    path.write_text('{"resourceType": "Patient", "id": "1"}\n{"resourceType": "Pat\n')
    with pytest.raises(duckdb.Error):
        _sql_rows(VIEWS["patient"], [path])


def test_shapes_not_compiled_give_none() -> None:
    def view(**select: Any) -> dict[str, Any]:
        return {"resource": "Patient", "select": [select]}

    column = [{"name": "x", "path": "gender"}]
    for shape in (
        view(unionAll=[{"column": column}, {"column": column}]),
        view(repeat=["link"], column=[{"name": "x", "path": "type"}]),
        view(column=[{"name": "x", "path": "name.given", "collection": True}]),
        view(column=[{"name": "x", "path": "%rowIndex"}]),
        view(column=[{"name": "x", "path": "birthDate < @2020-01-01"}]),
        view(column=[{"name": "x", "path": "value"}]),  # not an element of Patient
        view(column=[{"name": "x", "path": "name"}]),  # complex, not a column value
        {"resource": "NotAResource", "select": [{"column": column}]},
    ):
        assert view_sql(shape, ["Patient.ndjson"]) is None, shape


def test_conformance_cases_that_compile_give_the_suites_rows(tmp_path: Path) -> None:
    compiled = 0
    for i, case in enumerate(CASES):
        test = case.test
        if test.get("expectError") or "expect" not in test:
            continue
        view = test["view"]
        path = tmp_path / f"{i}.ndjson"
        path.write_text(
            "".join(
                json.dumps(r) + "\n"
                for r in case.resources
                if r.get("resourceType") == view["resource"]
            )
        )
        sql = view_sql(view, [str(path)])
        if sql is None:
            continue
        cursor = duckdb.connect().execute(sql)
        names = [d[0] for d in cursor.description or []]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        assert _bag(rows) == _bag(test["expect"]), (case.file, case.title)
        compiled += 1
    assert compiled >= 40
