"""``phems-connector query run`` as a user runs it (a real process) against the management
endpoint on loopback: the table, --json, and one-line errors with their exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import free_port
from tests.federation.conftest import ManagementStub
from tests.processes import REPO, connector_env


def run(tmp_path: Path, management: ManagementStub, *args: str) -> subprocess.CompletedProcess[str]:
    query = tmp_path / "cohort.json"
    if not query.exists():
        query.write_text(json.dumps({"cohort": {}, "strata": ["female", "male"]}))
    env = connector_env(tmp_path / "data", 8080, {"PHEMS_MANAGEMENT_API_KEY": management.api_key})
    return subprocess.run(
        [sys.executable, "-m", "connector", "query", "run", *args],
        env=env,
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_table_and_json(tmp_path: Path, management: ManagementStub) -> None:
    for cells, noise in (([140, 70, 70], [3, -1, 2]), ([95, 40, 55], [-4, 0, 1])):
        management.add(cells, noise)
    out = run(tmp_path, management, "cohort.json", "--connector", management.url)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "plain query, complete, 1 round(s), total 230"
    assert lines[1].split() == ["group", "population", "stratifier", "stratum", "count"]
    assert lines[3].split()[-3:] == ["sex", "female", "110"]
    assert "  H0 (did:web:hospital-0.example): answered" in lines
    assert "by hospital:" not in lines  # two hospitals: no breakdown
    out = run(
        tmp_path, management, "cohort.json", "--json", "--secure", "--connector", management.url
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["resourceType"] == "MeasureReport"
    assert report["group"][0]["population"][0]["count"] == 143 + 91


def test_partial_answer_warns_and_exits_3(tmp_path: Path, management: ManagementStub) -> None:
    management.add([140, 70, 70], [0, 0, 0])
    management.add([95, 40, 55], [0, 0, 0], behaviour="down")
    out = run(tmp_path, management, "cohort.json", "--connector", management.url)
    assert out.returncode == 3
    assert out.stdout.startswith("plain query, partial")
    assert out.stderr.strip().splitlines() == [
        "warning: H1 (did:web:hospital-1.example): unreachable: connection refused "
        "(http://127.0.0.1:9/dataplane)"
    ]


def test_one_line_errors(tmp_path: Path, management: ManagementStub) -> None:
    management.add([140, 70, 70], [0, 0, 0], behaviour="budget")
    cases = [
        (
            ("cohort.json",),
            1,
            "error: no hospital answered: H0 (did:web:hospital-0.example): "
            "budget-exhausted: epsilon budget exhausted: 1.0 of 1.0 spent",
        ),
        (("missing.json",), 2, "error: COHORT: cannot read missing.json: No such file"),
        (
            ("cohort.json", "--hospitals", "did:web:elsewhere.example"),
            1,
            "error: no hospital answered: H0 (did:web:elsewhere.example): no-agreement: "
            "no aggregate agreement with did:web:elsewhere.example",
        ),
        (("cohort.json", "--api-key", "wrong"), 2, "error: query: "),
    ]
    for args, code, words in cases:
        out = run(tmp_path, management, *args, "--connector", management.url)
        assert out.returncode == code, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
        assert out.stderr.startswith(words), out.stderr
    gone = f"http://127.0.0.1:{free_port()}"
    out = run(tmp_path, management, "cohort.json", "--connector", gone)
    assert out.returncode == 2
    assert out.stderr.startswith(f"error: cannot reach the connector at {gone}")
    (tmp_path / "cohort.json").write_text("[1, 2]")
    out = run(tmp_path, management, "cohort.json", "--connector", management.url)
    assert out.returncode == 2 and out.stderr == "error: COHORT: cohort.json is not a JSON object\n"


def test_help_names_the_exit_codes() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "connector", "query", "run", "--help"],
        capture_output=True,
        text=True,
        cwd=str(REPO),
        timeout=60,
    )
    assert out.returncode == 0 and "--secure" in out.stdout and "--hospitals" in out.stdout
