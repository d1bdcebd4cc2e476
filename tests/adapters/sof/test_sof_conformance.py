"""The official SQL-on-FHIR v2 conformance suite, read in place from ../shared, every case.

Also writes ``build/test-artifacts/sof-test-report.json`` in the suite's report format
(``test_report/test-report.schema.json`` of FHIR/sql-on-fhir-v2).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from adapters.sof import compile_view
from connector.errors import BadRequestError

REPO = Path(__file__).resolve().parents[3]
SUITE = REPO.parent / "shared" / "conformance" / "sql-on-fhir-v2-tests"
REPORT = REPO / "build" / "test-artifacts" / "sof-test-report.json"

# Non-shareable cases we know we fail, with the reason. Never a shareable case.
KNOWN_FAILURES: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Case:
    file: str
    title: str
    test: dict[str, Any]
    resources: list[dict[str, Any]]

    @property
    def shareable(self) -> bool:
        return "shareable" in self.test.get("tags", [])


def load_cases() -> list[Case]:
    files = sorted(p for p in SUITE.glob("*.json") if p.name != "tests.schema.json")
    if not files:
        raise FileNotFoundError(f"SQL-on-FHIR suite not found at {SUITE}")
    cases = []
    for path in files:
        suite = json.loads(path.read_text())
        for test in suite["tests"]:
            cases.append(Case(path.name, test["title"], test, suite["resources"]))
    return cases


CASES = load_cases()


def _canonical(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    return value


def _bag(rows: list[dict[str, Any]]) -> Counter[str]:
    return Counter(json.dumps(_canonical(r), sort_keys=True) for r in rows)


def run_case(case: Case) -> tuple[bool, str]:
    """(passed, reason); never raises for an outcome the suite can judge."""
    test = case.test
    try:
        view = compile_view(test["view"])
        rows = list(view.rows(case.resources))
    except BadRequestError as exc:
        if test.get("expectError"):
            return True, ""
        return False, f"unexpected error: {exc}"
    if test.get("expectError"):
        return False, f"expected an error, got {len(rows)} rows"
    if "expectColumns" in test and view.names != test["expectColumns"]:
        return False, f"columns {view.names} != {test['expectColumns']}"
    if "expectCount" in test:
        ok = len(rows) == test["expectCount"]
        return ok, "" if ok else f"{len(rows)} rows, expected {test['expectCount']}"
    if _bag(rows) != _bag(test["expect"]):
        return False, f"rows {rows} != expected {test['expect']}"
    return True, ""


class Report:
    def __init__(self) -> None:
        self.files: dict[str, dict[str, list[dict[str, Any]]]] = {}

    def record(self, case: Case, passed: bool, reason: str) -> None:
        result: dict[str, Any] = {"passed": passed}
        if reason:
            result["reason"] = reason
        tests = self.files.setdefault(case.file, {"tests": []})["tests"]
        tests.append({"name": case.title, "result": result})


@pytest.fixture(scope="session")
def report() -> Iterator[Report]:
    rep = Report()
    try:
        yield rep
    finally:
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        REPORT.write_text(json.dumps(rep.files, indent=2) + "\n")


def _param(case: Case) -> Any:
    marks = []
    reason = KNOWN_FAILURES.get((case.file, case.title))
    if reason is not None:
        assert not case.shareable, "a shareable case may not be marked as a known failure"
        marks.append(pytest.mark.xfail(strict=True, reason=reason))
    return pytest.param(case, marks=marks, id=f"{case.file[:-5]}:{case.title}")


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_conformance_case(case: Case, report: Report) -> None:
    passed, reason = run_case(case)
    report.record(case, passed, reason)
    assert passed, reason


def test_suite_has_all_shareable_cases() -> None:
    assert sum(c.shareable for c in CASES) == 123
    assert not [
        k for k in KNOWN_FAILURES if any(c.shareable for c in CASES if (c.file, c.title) == k)
    ]


def _plain(value: Any) -> Any:
    if value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value  # numpy scalars


@pytest.mark.parametrize(
    "case", [pytest.param(c, id=f"{c.file[:-5]}:{c.title}") for c in CASES if "expect" in c.test]
)
def test_conformance_case_as_frame(case: Case) -> None:
    """The same cases through ``to_frame``: view column order, and the suite's expected rows."""
    view = compile_view(case.test["view"])
    frame = view.to_frame(case.resources)
    assert list(frame.columns) == view.names
    records = [
        {name: _plain(value) for name, value in zip(view.names, row, strict=True)}
        for row in frame.itertuples(index=False)
    ]
    assert _bag(records) == _bag(case.test["expect"])
