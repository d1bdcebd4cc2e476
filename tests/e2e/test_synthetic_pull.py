"""Synthetic patients end to end, two connector processes on loopback: the data user negotiates
the hospital's synthetic offer, starts a transfer and pulls through their own connector. The
first pull is a 503 with Retry-After (the hospital fits its model as a job), then a FHIR
Bundle arrives; more patients than the offer allows is a 403; ``phems-connector synthetic
fetch`` writes a valid Bundle, waits while the hospital refits after an opt-out, and exits
non-zero with one line when refused, unreachable or out of time."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fhir.resources.R4B import get_fhir_model_class

from catalog.formats import Format
from connector.db.engine import create_engine
from connector.db.tables import audit_log
from connector.synthetic.fhir import resource_refs
from tests.conftest import free_port
from tests.e2e.conftest import Pair, dataset, wait_for

DATASET = "paediatric-asthma"
SYNTHETIC_OFFER = {
    "@id": "offer-synthetic",
    "@type": "Offer",
    "permission": [
        {
            "action": "use",
            "constraint": [
                {"leftOperand": "phems:membership", "operator": "eq", "rightOperand": True},
                {"leftOperand": "phems:outputType", "operator": "eq", "rightOperand": "synthetic"},
                {"leftOperand": "phems:patients", "operator": "lteq", "rightOperand": 100},
            ],
        }
    ],
}
SYNTH = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SYNTH"}


def _agreement(pair: Pair) -> str:
    pair.papi.post("/datasets", dataset(DATASET, [SYNTHETIC_OFFER]), expect=201)
    catalog = pair.capi.post(
        "/catalog/request", {"counterpartyAddress": pair.provider.url + "/dsp/2025-1"}
    )
    [ds] = catalog["dataset"]
    offer = ds["hasPolicy"][0] | {"target": ds["@id"]}
    n = pair.capi.post(
        "/negotiations",
        {"counterpartyAddress": pair.provider.url + "/dsp/2025-1", "offer": offer},
        expect=201,
    )
    final = wait_for(
        lambda: pair.capi.get(f"/negotiations/{n['id']}"),
        lambda v: v["state"] in ("FINALIZED", "TERMINATED"),
    )
    assert final["state"] == "FINALIZED", final
    [agreement] = pair.capi.get("/agreements")
    return str(agreement["id"])


def _pull(pair: Pair, tid: str, **params: Any) -> Any:
    return pair.capi.http.post(f"/management/transfers/{tid}/data", params=params, timeout=120)


def _fetch(pair: Pair, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``phems-connector synthetic fetch`` as a data user runs it in their connector's
    directory (its address and management API key found from there)."""
    return subprocess.run(
        [sys.executable, "-m", "connector", "synthetic", "fetch", *args],
        env=pair.consumer.env,
        cwd=str(tmp),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _fits(pair: Pair) -> list[dict[str, Any]]:
    return [j for j in pair.papi.get("/jobs") if j["kind"] == "synthetic-fit"]


def _check_bundle(bundle: dict[str, Any], patients: int) -> None:
    get_fhir_model_class("Bundle").model_validate(bundle)  # every resource, per R4B
    resources = [e["resource"] for e in bundle["entry"]]
    assert sum(r["resourceType"] == "Patient" for r in resources) == patients
    urls = {e["fullUrl"] for e in bundle["entry"]}
    assert all(ref in urls for r in resources for ref in resource_refs(r))
    for r in resources:
        tags = [{"system": t["system"], "code": t["code"]} for t in r["meta"]["tag"]]
        assert SYNTH in tags, r["resourceType"]
        assert not {"identifier", "name", "address", "telecom", "photo"} & set(r)


def test_synthetic_pull_end_to_end(pair: Pair, tmp_path: Path) -> None:
    agreement = _agreement(pair)
    t = pair.capi.post(
        "/transfers", {"agreementId": agreement, "format": Format.SYNTHETIC.value}, expect=201
    )
    tid = t["id"]
    started = wait_for(
        lambda: pair.capi.get(f"/transfers/{tid}"), lambda v: v["state"] != "REQUESTED"
    )
    assert started["state"] == "STARTED", started

    # Out of time at once: the hospital has no model yet (exit 3, one line).
    late = _fetch(pair, tmp_path, "--transfer", tid, "--out", "x.json", "--timeout", "0")
    assert late.returncode == 3, late.stderr
    assert late.stderr.strip().startswith("error: the data were not ready within 0 s")
    assert len(late.stderr.strip().splitlines()) == 1 and not (tmp_path / "x.json").exists()

    # Through the data user's connector: 503 + Retry-After while the tables are built and
    # the model is fitted (a job at the hospital), then the Bundle.
    first = _pull(pair, tid, patients=20)
    assert first.status_code == 503, first.text
    assert first.headers["content-type"].startswith("application/problem+json")
    assert int(first.headers["retry-after"]) > 0
    answer = _until_served(pair, tid, 20)
    assert answer.status_code == 200, answer.text
    [fitted] = _fits(pair)
    assert fitted["state"] == "done" and fitted["percent"] == 100.0
    assert fitted["result"]["accepted"] is True
    assert answer.headers["content-type"].startswith("application/fhir+json")
    bundle = answer.json()
    _check_bundle(bundle, 20)
    assert bundle["entry"][-1]["resource"]["resourceType"] == "DocumentReference"

    # More patients than the agreement allows: refused, naming the constraint.
    refused = _pull(pair, tid, patients=1000)
    assert refused.status_code == 403, refused.text
    assert "patients" in refused.json()["detail"]

    # The CLI writes a valid Bundle and its report, and says what it wrote in one line.
    done = _fetch(
        pair, tmp_path, "--transfer", tid, "--patients", "7", "--seed", "3",
        "--out", "patients.json", "--report", "report.json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"wrote 7 synthetic patients ({_resources(tmp_path / 'patients.json')} resources) to "
        f"patients.json (transfer {tid}); report: report.json"
    )
    _check_bundle(json.loads((tmp_path / "patients.json").read_text()), 7)
    assert {"quality", "privacy", "utility"} <= set(
        json.loads((tmp_path / "report.json").read_text())
    )

    # Refused (exit 1) and unreachable (exit 2): one line each.
    too_many = _fetch(pair, tmp_path, "--transfer", tid, "--patients", "1000", "--out", "y.json")
    assert too_many.returncode == 1 and "HTTP 403" in too_many.stderr, too_many.stderr
    assert len(too_many.stderr.strip().splitlines()) == 1
    nobody = f"http://127.0.0.1:{free_port()}"
    gone = _fetch(pair, tmp_path, "--transfer", tid, "--out", "z.json", "--connector", nobody)
    assert gone.returncode == 2 and "cannot be reached" in gone.stderr, gone.stderr
    assert len(gone.stderr.strip().splitlines()) == 1

    # A patient opts out: the model fitted on them is never served again; the CLI waits
    # (saying so) while the hospital builds the tables and fits again, then writes NDJSON.
    patient = bundle_patient_source(pair)
    pair.papi.post("/optouts", {"patients": [patient]}, expect=200)
    again = _fetch(
        pair, tmp_path, "--transfer", tid, "--patients", "5", "--format", "ndjson",
        "--out", "after.ndjson", "--timeout", "300",
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "waiting" in again.stderr
    lines = (tmp_path / "after.ndjson").read_text().splitlines()
    assert sum(json.loads(line)["resourceType"] == "Patient" for line in lines) == 5
    fits = _fits(pair)
    assert len(fits) == 2 and {j["state"] for j in fits} == {"done"}
    assert fits[0]["result"]["model"] != fits[1]["result"]["model"]

    # The hospital's audit: who, how many patients, which model.
    delivered = wait_for(lambda: _delivered(pair), lambda v: len(v) >= 3)
    assert [d["patients"] for _, d in delivered] == [20, 7, 5]
    assert {actor for actor, _ in delivered} == {pair.consumer.did}
    assert [d["model"] for _, d in delivered] == [
        fits[1]["result"]["model"],
        fits[1]["result"]["model"],
        fits[0]["result"]["model"],
    ]

    # Given the agreement, the CLI starts a transfer in the synthetic format first.
    fresh = _fetch(pair, tmp_path, "--agreement", agreement, "--patients", "3", "--out", "a.json")
    assert fresh.returncode == 0, fresh.stderr
    new_tid = fresh.stdout.split("(transfer ")[1].split(")")[0]
    assert new_tid != tid
    assert pair.capi.get(f"/transfers/{new_tid}")["format"] == Format.SYNTHETIC.value
    _check_bundle(json.loads((tmp_path / "a.json").read_text()), 3)
    assert [e for e in pair.provider.log().splitlines() if "Traceback" in e] == []


def _resources(path: Path) -> int:
    entries = json.loads(path.read_text())["entry"]
    return sum(e["resource"]["resourceType"] != "DocumentReference" for e in entries)


def bundle_patient_source(pair: Pair) -> str:
    """A real patient of the hospital's FHIR data (the e2e provider's files)."""
    directory = Path(pair.provider.env["PHEMS_FHIR_FILES_DIR"])
    first = next(iter(sorted(directory.glob("Patient.*.ndjson"))))
    return str(json.loads(first.read_text().splitlines()[0])["id"])


def _delivered(pair: Pair) -> list[tuple[str, dict[str, Any]]]:
    """The hospital's ``dataplane.delivered`` audit entries (actor, details), oldest first."""

    async def read() -> list[tuple[str, dict[str, Any]]]:
        engine = create_engine(pair.provider.env["PHEMS_DATABASE_URL"])
        try:
            async with engine.connect() as conn:
                query = (
                    sa.select(audit_log.c.actor, audit_log.c.details)
                    .where(audit_log.c.event == "dataplane.delivered")
                    .order_by(audit_log.c.seq)
                )
                rows = (await conn.execute(query)).all()
        finally:
            await engine.dispose()
        return [(actor, json.loads(details)) for actor, details in rows]

    return asyncio.run(read())


def _until_served(pair: Pair, tid: str, patients: int) -> Any:
    """Pull (a second apart) until the answer is no longer a 503; five minutes at most."""
    deadline = time.monotonic() + 300
    while (answer := _pull(pair, tid, patients=patients)).status_code == 503:
        assert time.monotonic() < deadline, answer.text
        time.sleep(1)
    return answer
