"""`phems-connector synthetic fit|sample|report` as a hospital runs them (real processes)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import orjson
from fhir.resources.R4B import get_fhir_model_class

from connector.composition import build_services
from connector.publishing.records import DatasetRecord
from connector.sampledata import generate
from connector.settings import load_settings
from tests.conftest import free_port
from tests.processes import REPO, connector_env


def _cli(data: Path, fhir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = connector_env(data, free_port(), {"PHEMS_FHIR_FILES_DIR": str(fhir)})
    return subprocess.run(
        [sys.executable, "-m", "connector", "synthetic", *args],
        env=env,
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=280,
    )


async def _dataset(data: Path, fhir: Path, dataset_id: str) -> None:
    """The dataset the commands name, published as an operator would (no scope)."""
    settings = load_settings(data_dir=data, fhir_files_dir=fhir)
    services = await build_services(settings)
    try:
        now = services.clock.now()
        async with services.db.transaction() as conn:
            await services.dataset_store.insert(
                conn, DatasetRecord(id=dataset_id, title="Sample", created_at=now, modified_at=now)
            )
    finally:
        await services.aclose()


def test_fit_sample_report(tmp_path: Path) -> None:
    fhir, data = tmp_path / "fhir", tmp_path / "data"
    generate(fhir, patients=60, seed=5, profile="general")
    unknown = _cli(data, fhir, "fit", "sample-ds")
    assert unknown.returncode == 2 and "no dataset sample-ds" in unknown.stderr
    asyncio.run(_dataset(data, fhir, "sample-ds"))

    missing = _cli(data, fhir, "sample", "sample-ds", "--patients", "3", "--out", "x.json")
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    assert "no synthetic data model" in missing.stderr and "Traceback" not in missing.stderr
    bad = _cli(data, fhir, "fit", "sample-ds", "--backend", "gan")
    assert bad.returncode == 2 and "unknown backend" in bad.stderr

    fitted = _cli(data, fhir, "fit", "sample-ds")
    assert fitted.returncode == 0, fitted.stderr
    assert "fitted on" in fitted.stdout and "quality" in fitted.stdout
    assert "done" in fitted.stdout + fitted.stderr  # the progress bar's last stage

    out = tmp_path / "bundle.json"
    sampled = _cli(data, fhir, "sample", "sample-ds", "--patients", "7", "--out", str(out))
    assert sampled.returncode == 0, sampled.stderr
    bundle = orjson.loads(out.read_bytes())
    get_fhir_model_class("Bundle").model_validate(bundle)
    assert sum(e["resource"]["resourceType"] == "Patient" for e in bundle["entry"]) == 7

    lines = tmp_path / "patients.ndjson"
    ndjson = _cli(data, fhir, "sample", "sample-ds", "--patients", "4", "--out", str(lines),
                  "--format", "ndjson")  # fmt: skip
    assert ndjson.returncode == 0, ndjson.stderr
    assert (
        sum(json.loads(x)["resourceType"] == "Patient" for x in lines.read_text().splitlines()) == 4
    )

    report = _cli(data, fhir, "report", "sample-ds")
    assert report.returncode == 0 and "quality" in report.stdout and "privacy" in report.stdout
    whole = json.loads(_cli(data, fhir, "report", "sample-ds", "--json").stdout)
    assert {"model", "quality", "privacy", "utility"} <= set(whole)
