"""`phems-connector audit verify / export` as an operator runs them after a real connector
wrote its log: signed checkpoints at shutdown, one line naming a damaged row."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import free_port
from tests.e2e.conftest import dataset
from tests.processes import REPO, connector_env, running_connector


def _cli(data: Path, port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connector", "audit", *args],
        env=connector_env(data, port),
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_checkpoints_and_a_damaged_row(tmp_path: Path) -> None:
    data, port = tmp_path / "data", free_port()
    with running_connector(data, port) as c:
        key = {"X-Api-Key": c.api_key}
        for name in ("a", "b"):
            r = httpx.post(c.url + "/management/datasets", json=dataset(name), headers=key)
            assert r.status_code == 201, r.text
    # Shutdown chained the entries and signed a checkpoint of the head.
    checkpoints = (data / "audit-checkpoints.jsonl").read_text().splitlines()
    assert len(checkpoints) >= 1
    ok = _cli(data, port, "verify")
    assert ok.returncode == 0, ok.stderr
    assert "signed checkpoints vouch for entries 1-" in ok.stdout

    export = tmp_path / "export.ndjson"
    assert _cli(data, port, "export", "--out", str(export)).returncode == 0
    events = [json.loads(line) for line in export.read_text().splitlines()]
    anchors = [x for e in events for x in e["extension"] if x["url"].endswith("audit-checkpoint")]
    assert anchors and all(a["valueString"] in checkpoints for a in anchors)

    with sqlite3.connect(data / "phems.db") as db:
        db.execute("UPDATE audit_log SET details = '{oops' WHERE seq = 1")
    bad = _cli(data, port, "verify")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "audit log damaged: entry 1: unreadable details" in bad.stderr
    broken = _cli(data, port, "export")
    assert broken.returncode == 2 and "Traceback" not in broken.stderr
    lines = broken.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: entry 1: unreadable details"), lines
