"""The SDK's shell mirror as a user runs it (real processes, in the data user connector's
directory): ``catalog search``, ``negotiate`` and ``query run`` exit 0 on success, and with
one line and exit 1 on a refused negotiation, an exhausted budget or an unreachable
hospital."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.e2e.conftest import Authority, launch
from tests.processes import stop
from tests.sdk.conftest import (
    ONE_QUERY_DATASET,
    QUERY,
    SAMPLE_DATASET,
    UNPERMITTED_DATASET,
    Space,
    fresh,
)


def cli(space: Space, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connector", *args],
        env=space.user.env,
        cwd=str(space.user.data_dir),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def one_line_error(done: subprocess.CompletedProcess[str], code: int = 1) -> str:
    assert done.returncode == code, (done.stdout, done.stderr)
    assert done.stdout == "" and "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("error: ")
    return line


def test_search_then_negotiate(space: Space) -> None:
    with space.client() as phems:
        phems.harvest(*space.addresses())
    found = cli(space, "catalog", "search", "respiratory", "--output", "aggregate")
    assert found.returncode == 0, found.stderr
    lines = [line.split("\t") for line in found.stdout.splitlines()]
    assert sorted(line[2] for line in lines if line[0] == SAMPLE_DATASET) == [
        "Hospital 0",
        "Hospital 1",
    ]
    assert found.stderr.endswith(" datasets\n")
    as_json = json.loads(
        cli(space, "catalog", "search", "--json", "--hospital", "Hospital 1").stdout
    )
    assert [d["id"] for d in as_json] == [SAMPLE_DATASET]
    assert as_json[0]["provider"] == space.hospitals[1].did
    # one hospital offers it twice? no: two hospitals offer it, so --provider is needed
    ambiguous = one_line_error(cli(space, "negotiate", SAMPLE_DATASET), code=2)
    assert "2 hospitals offer" in ambiguous
    done = cli(space, "negotiate", SAMPLE_DATASET, "--provider", space.addresses()[1])
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("agreement urn:uuid:") and space.hospitals[1].did in done.stdout


def test_a_refused_negotiation_exits_1(space: Space) -> None:
    done = cli(
        space, "negotiate", UNPERMITTED_DATASET, "--provider", space.addresses()[0],
        "--output", "synthetic",
    )  # fmt: skip
    line = one_line_error(done)
    assert f"negotiation with {space.hospitals[0].did} refused: " in line and "ermit" in line


def test_negotiating_with_an_unreachable_hospital_exits_1(space: Space) -> None:
    line = one_line_error(cli(space, "negotiate", SAMPLE_DATASET, "--provider", space.dead))
    assert line.startswith(f"error: catalog of {space.dead}: ")


def test_an_exhausted_budget_exits_1(space: Space) -> None:
    done = cli(space, "negotiate", ONE_QUERY_DATASET, "--provider", space.addresses()[0], "--json")
    assert done.returncode == 0, done.stderr
    agreement = json.loads(done.stdout)["@id"]
    cohort = space.tmp / "cohort-budget.json"
    cohort.write_text(json.dumps(fresh(QUERY, "by-sex-cli")))
    first = cli(space, "query", "run", str(cohort), "--hospitals", agreement)
    assert first.returncode == 0, first.stderr
    line = one_line_error(cli(space, "query", "run", str(cohort), "--hospitals", agreement))
    assert line.startswith("error: no hospital answered: ")
    assert ": budget-exhausted: " in line and "epsilon" in line


def test_a_query_at_an_unreachable_hospital_exits_1(space: Space, authority: Authority) -> None:
    port = space.ports[-1]
    extra = launch(space.tmp, "extra", port, space.ports, authority, args=("--with-sample-data",))
    try:
        done = cli(space, "negotiate", SAMPLE_DATASET, "--provider", extra.url + "/dsp/2025-1")
        assert done.returncode == 0, done.stderr
    finally:
        stop(extra.proc)
    cohort = space.tmp / "cohort.json"
    cohort.write_text(json.dumps(QUERY))
    # no transfer was started with it before it stopped: the transfer's request is retried
    # until the timeout
    done = cli(space, "query", "run", str(cohort), "--hospitals", extra.did, "--timeout", "5")
    line = one_line_error(done)
    assert line.startswith(f"error: no hospital answered: {extra.did}: timeout: ")
