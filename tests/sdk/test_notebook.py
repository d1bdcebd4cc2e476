"""docs/data-user.ipynb is a valid nbformat 4 notebook whose code runs: its cells, in order,
against real connectors on loopback (the first cell's addresses replaced by theirs)."""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

from connector.sdk import Client, PhemsError
from tests.processes import REPO
from tests.sdk.conftest import Space

NOTEBOOK = REPO / "docs" / "data-user.ipynb"


def test_the_notebook_is_nbformat_4() -> None:
    nb = json.loads(NOTEBOOK.read_text())
    assert nb["nbformat"] == 4 and nb["nbformat_minor"] >= 5
    assert nb["metadata"]["kernelspec"]["language"] == "python"
    ids = [c["id"] for c in nb["cells"]]
    assert len(set(ids)) == len(ids)
    for cell in nb["cells"]:
        assert cell["cell_type"] in ("markdown", "code") and isinstance(cell["source"], list)
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
            compile("".join(cell["source"]), cell["id"], "exec")


def test_the_notebook_runs(space: Space) -> None:
    nb = json.loads(NOTEBOOK.read_text())
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    assert "Client(CONNECTOR, API_KEY)" in code[0]
    names: dict[str, Any] = {
        "phems": Client(space.user.url, space.user.api_key),
        "HOSPITALS": space.addresses(),
        "PhemsError": PhemsError,
    }
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            for cell in code[1:]:
                exec(cell, names)  # the notebook's own code, as Jupyter runs it
    finally:
        names["phems"].close()
    result = names["result"]
    assert result.status == "complete" and result.mode == "secure"
    assert names["report"]["resourceType"] == "MeasureReport"
    assert names["synthetic"].patients == 50 and names["synthetic"].quality is not None
    assert len(names["agreements"]) == len(space.hospitals)
    assert printed.getvalue().startswith("Unreachable ")
