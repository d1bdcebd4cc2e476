"""The connector starts without the synthetic stack: pandas, SDV, torch, mbi are imported only
when synthetic work is done."""

from __future__ import annotations

import subprocess
import sys

from tests.processes import REPO

HEAVY = ("pandas", "sdv", "sdmetrics", "torch", "mbi", "jax", "duckdb", "matplotlib")


def test_wiring_modules_import_nothing_heavy() -> None:
    modules = ("connector.cli", "connector.synthetic.fulfilment", "connector.synthetic.generator",
               "connector.synthetic.config", "connector.db.synthetic_models",
               "connector.synthetic.fits", "connector.synthetic.client",
               "connector.synthetic.frames", "connector.composition")  # fmt: skip
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=str(REPO), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
