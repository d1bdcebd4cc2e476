"""docs/publish.md, run as written against a real connector (with sample FHIR data for the
statistics): its JSON body saved as dataset.json, its bash blocks in order, in one shell. And
its metadata table names exactly the fields an operator writes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from catalog.model import Dataset
from connector.publishing.healthdcat import DERIVED_FIELDS, STATISTICS_FIELDS
from tests.conftest import free_port
from tests.processes import REPO, running_connector

GUIDE = REPO / "docs" / "publish.md"
READER = "export CONNECTOR=http://127.0.0.1:8080 KEY=$(cat phems-data/management-api-key)"


def test_the_publishing_guide_runs_as_written(tmp_path: Path) -> None:
    text = GUIDE.read_text()
    [body] = re.findall(r"^```json\n(.*?)^```$", text, flags=re.DOTALL | re.MULTILINE)
    blocks = re.findall(r"^```bash\n(.*?)^```$", text, flags=re.DOTALL | re.MULTILINE)
    script = "\n".join(blocks)
    assert script.count(READER) == 1
    work = tmp_path / "steward"
    work.mkdir()
    (work / "dataset.json").write_text(body)
    with running_connector(tmp_path / "data", free_port()) as c:
        # The sample FHIR data, for the statistics (the dataset itself is the guide's).
        subprocess.run(
            [sys.executable, "-m", "connector", "sample", "generate", "--patients", "60"]
            + ["--out", str(tmp_path / "data" / "fhir")],
            env=c.env,
            check=True,
            capture_output=True,
            timeout=300,
        )
        (work / "guide.sh").write_text(
            script.replace(READER, f"export CONNECTOR={c.url} KEY={c.api_key}")
        )
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "guide.sh"],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=240,
        )
    out = done.stdout
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"id": "diabetes-type1-2015-2024"' in out and '"status": "published"' in out
    assert "words-for-codes violates HealthDCAT-AP R8 (NON_PUBLIC) in 2 place(s)" in out
    assert "dct:spatial: Value does not have class dct:Location" in out
    assert re.search(r'"number_of_unique_individuals": \d+', out), out
    assert re.search(r"^[1-9]\d*$", out, flags=re.MULTILINE), out  # the catalog's lines
    assert '["paediatrics","type 1 diabetes","HbA1c","insulin"]' in out
    assert "stale PUT: 409" in out


def test_the_metadata_table_names_every_field_an_operator_writes() -> None:
    table = GUIDE.read_text().split("<!-- metadata-fields", 1)[1].split("\n\n", 1)[0]
    documented = {
        key
        for cell in re.findall(r"^\| (.+?) \|", table, flags=re.MULTILINE)
        for key in re.findall(r"`([a-z_]+)`", cell)
    }
    writable = set(Dataset.model_fields) - DERIVED_FIELDS - STATISTICS_FIELDS
    assert documented == writable
