"""Fit and sampling time of one synthetic backend on generated data (docs/synthetic.md's table).

    PYTHONPATH=. .venv/bin/python bench/bench_synthetic_backends.py BACKEND PATIENTS [EPOCHS]

Generates PATIENTS general-hospital children, builds and encodes their flat views (not timed),
then times the synthesizer alone: ``fit`` on the training tables and ``sample`` of 1,000
patients. Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from connector.sampledata import generate  # noqa: E402
from connector.synthetic.backends import new_backend  # noqa: E402
from connector.synthetic.config import SyntheticConfig  # noqa: E402
from connector.synthetic.flatten import write_flat_views  # noqa: E402
from connector.synthetic.tables import encode, read_views  # noqa: E402
from tests.synthetic.flatviews import read_ndjson  # noqa: E402


def main() -> None:
    backend, patients = sys.argv[1], int(sys.argv[2])
    epochs = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate(root / "fhir", patients=patients, seed=1, profile="general")
        views = write_flat_views(read_ndjson(root / "fhir"), root / "views", dataset_id="b",
                                 version="b")  # fmt: skip
        tables, encoding = encode(read_views(views), min_code_patients=5)
    model = new_backend(SyntheticConfig.from_mapping({"backend": backend, "epochs": epochs}))
    started = time.perf_counter()
    model.fit(tables, lambda _: None)
    fitted = time.perf_counter()
    model.sample(1000, encoding.rows_per_patient, 1)
    sampled = time.perf_counter()
    rows = sum(len(t) for t in tables.values())
    print(json.dumps({"backend": backend, "patients": patients, "rows": rows, "epochs": epochs,
                      "fit_s": round(fitted - started, 1),
                      "sample_1000_s": round(sampled - fitted, 1)}))  # fmt: skip


if __name__ == "__main__":
    main()
