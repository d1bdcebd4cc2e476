"""``phems-connector demo`` end to end as a user runs it (a real process starting real
processes): with ``--no-wait`` it prints its summary and stops everything; without, it serves
the catalog UI until Ctrl-C. Its numbers are noisy: ranges and structure, not values."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.adapters.fhir.sekmet import ensure_sekmet
from tests.processes import REPO


def demo(tmp_path: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "connector", "demo", "--dir", str(tmp_path / "demo"),
            "--sekmet", str(ensure_sekmet()), *args]  # fmt: skip


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("PHEMS_")}
    return out | {"PYTHONPATH": str(REPO), "COLUMNS": "120"}


def gone(pids: list[int]) -> bool:
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        return False
    return True


def test_demo_no_wait_prints_its_summary_and_stops_everything(tmp_path: Path) -> None:
    summary_file = tmp_path / "summary.json"
    done = subprocess.run(
        demo(tmp_path, "--no-wait", "--summary-json", str(summary_file)),
        env=env(), cwd=str(tmp_path), capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    summary = json.loads(summary_file.read_text())
    hospitals = summary["hospitals"]
    assert [h["profile"] for h in hospitals] == ["general", "cardiac", "picu"]
    assert [h["source"] for h in hospitals].count("FHIR REST server") == 1
    assert all(h["name"] in out for h in hospitals)
    assert summary["harvested"] == 3 and len(summary["datasets"]) == 3
    agreements = summary["agreements"]
    # an aggregate agreement with each hospital, a synthetic one with the second
    assert len(agreements) == 4 and all(a["verified"] for a in agreements)
    assert [a["provider"] for a in agreements] == [h["did"] for h in hospitals] + [
        hospitals[1]["did"]
    ]
    assert out.count(": valid, signed by both parties") == 4
    query = summary["query"]
    assert query == query | {"mode": "secure", "status": "complete", "rounds": 1, "answered": 3}
    counts = query["counts"]
    cohort, girls, boys = counts["cohort"], counts["female"], counts["male"]
    # about 110 respiratory patients in 600 (generated, seeded); noise and rounding to 10
    assert 40 <= cohort <= 250 and cohort % 10 == 0
    assert girls % 10 == 0 and boys % 10 == 0 and abs(girls + boys - cohort) <= 60
    synthetic = summary["synthetic"]
    assert synthetic["hospital"] == hospitals[1]["name"] and synthetic["patients"] == 50
    assert synthetic["resources"]["Patient"] == 50 and synthetic["resources"]["Encounter"] > 0
    assert 0.0 <= synthetic["quality"] <= 1.0 and synthetic["exactCopiesDelivered"] == 0.0
    for heading in ("Harvested catalog", "secure aggregation", "Synthetic bundle", "Its report",
                    "Summary"):  # fmt: skip
        assert heading in out
    [line] = [line for line in out.splitlines() if "children in the cohort" in line]
    assert str(cohort) in line
    assert gone(summary["pids"]) and len(summary["pids"]) == 5  # 4 connectors, the FHIR server
    assert (tmp_path / "demo" / "data-user" / "data-user.log").exists()


def test_demo_serves_the_catalog_until_ctrl_c(tmp_path: Path) -> None:
    summary_file = tmp_path / "summary.json"
    proc = subprocess.Popen(
        demo(tmp_path, "--patients", "60", "--summary-json", str(summary_file)),
        env=env(), cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Running until Ctrl-C"):
                break
        [url] = [line.split(": ", 1)[1].strip() for line in lines if line.startswith("Catalog UI")]
        page = httpx.get(url, headers={"Accept": "text/html"}, timeout=10)
        assert page.status_code == 200 and "paediatric-respiratory" in page.text
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, "".join(lines) + rest
    assert "stopping every process" in rest
    assert gone(json.loads(summary_file.read_text())["pids"])


def test_demo_refuses_a_directory_in_use(tmp_path: Path) -> None:
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "something").write_text("")
    done = subprocess.run(
        demo(tmp_path, "--no-wait"), env=env(), cwd=str(tmp_path), capture_output=True,
        text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("error: --dir: ") and "not empty" in done.stderr
