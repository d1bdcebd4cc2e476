"""Federated queries end to end: 4 hospital connectors and 1 data user as real processes on
loopback (issue 20, "Federated").

Each hospital has its own generated sample data (other profiles and seeds) and publishes the
sample dataset with its aggregate offer; the data user negotiates an aggregate agreement with
each, then asks them through ``POST /management/queries`` and ``phems-connector query run``.
Hospital 0 sits behind a proxy that records what it answers (what the data user's connector
receives), hospital 3 behind one that can hold its data plane requests (so that it is killed
while a round waits for it). The tests run in order on one federation: the hospital killed
in one stays dead for the next, and the last adds a second agreement with hospital 1.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from catalog.examples import PHEMS_NS
from connector.sampledata import generate
from tests.conftest import free_port
from tests.e2e.conftest import Api, Authority, dataset, launch, wait_for
from tests.e2e.test_durability import start_proxy
from tests.fulfilment.flat_views import load_ndjson
from tests.processes import ConnectorProcess, stop

SITES = [  # name, sample data profile, seed, patients
    ("Kinderklinik Nord", "general", 101, 150),
    ("Ospedale Pediatrico Sud", "general", 202, 120),
    ("Herzzentrum", "cardiac", 303, 100),
    ("PICU Centre", "picu", 404, 100),
]
SAMPLE_DATASET = "paediatric-respiratory-2019-2024"
PERIOD = ("2019-01-01", "2024-12-31")  # the sample dataset's scope
AMBULATORY = {
    "context": {"system": "fdpg.mii.cds", "code": "Fall", "display": "Fall"},
    "termCodes": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": "AMB",
            "display": "ambulatory",
        }
    ],
}
GIRLS_AND_BOYS = {
    "context": {"system": "fdpg.mii.cds", "code": "Patient", "display": "Patient"},
    "termCodes": [{"system": "http://loinc.org", "code": "76689-9", "display": "Sex"}],
    "valueFilter": {
        "type": "concept",
        "selectedConcepts": [
            {"system": "http://hl7.org/fhir/administrative-gender", "code": g, "display": g}
            for g in ("female", "male")
        ],
    },
}
# Girls and boys seen as outpatients, by sex: about every child of every hospital. (Without
# the sex criterion the strata "other" and "unknown", empty, would hide one more stratum.)
QUERY: dict[str, Any] = {
    "version": "2",
    "display": "Outpatients by sex",
    "inclusionCriteria": [[AMBULATORY], [GIRLS_AND_BOYS]],
    "measures": [{"type": "stratify", "by": "sex", "id": "sex"}],
    "options": {"purpose": "research"},
}
SHARE_KEYS = {"protocol", "sessionId", "participant", "layoutDigest", "queryDigest", "maskedVector"}


@dataclass
class DataSpace:
    hospitals: list[ConnectorProcess]
    user: ConnectorProcess
    uapi: Api
    watch: str  # the proxy in front of hospital 0: GET /__proxy/log
    hold: str  # the proxy in front of hospital 3
    truth: list[int]  # each hospital's true count of the query's cohort
    tmp: Path


def _true_count(fhir: Path) -> int:
    """The cohort's size from the NDJSON: girls and boys with an ambulatory encounter in the
    dataset's period."""
    start, end = PERIOD
    resources = load_ndjson(fhir)
    sexed = {
        f"Patient/{p['id']}" for p in resources["Patient"] if p.get("gender") in ("female", "male")
    }
    return len(
        {
            e["subject"]["reference"]
            for e in resources.get("Encounter", [])
            if e["class"]["code"] == "AMB" and start <= e["period"]["start"][:10] <= end
        }
        & sexed
    )


def _negotiate(uapi: Api, address: str, dataset_id: str) -> str:
    """The data user negotiates the dataset's aggregate offer; the agreement's id."""
    catalog = uapi.post("/catalog/request", {"counterpartyAddress": address})
    [ds] = [d for d in catalog["dataset"] if d["@id"].endswith(dataset_id)]
    offers = ds["hasPolicy"] if isinstance(ds["hasPolicy"], list) else [ds["hasPolicy"]]
    [offer] = [o for o in offers if "aggregate" in json.dumps(o)]
    started = uapi.post(
        "/negotiations",
        {"counterpartyAddress": address, "offer": offer | {"target": ds["@id"]}},
        expect=201,
    )
    final = wait_for(
        lambda: uapi.get(f"/negotiations/{started['id']}"),
        lambda v: v["state"] in ("FINALIZED", "TERMINATED"),
    )
    assert final["state"] == "FINALIZED", final
    agreement_id: str = final["agreement"]["@id"]
    return agreement_id


@pytest.fixture(scope="module")
def space(tmp_path_factory: pytest.TempPathFactory, authority: Authority) -> Iterator[DataSpace]:
    tmp = tmp_path_factory.mktemp("federated")
    ports = [free_port() for _ in range(7)]  # 4 hospitals, the data user, 2 proxies
    user_port, watch_port, hold_port = ports[4], ports[5], ports[6]
    watch, hold = f"http://127.0.0.1:{watch_port}", f"http://127.0.0.1:{hold_port}"
    public = {0: watch, 3: hold}
    truth = []
    for i, (_, profile, seed, patients) in enumerate(SITES):
        fhir = tmp / f"hospital-{i}" / "fhir"
        generate(fhir, patients=patients, seed=seed, profile=profile)
        truth.append(_true_count(fhir))
    with ExitStack() as stack:
        for port, proxy_target in ((watch_port, ports[0]), (hold_port, ports[3])):
            proxy = start_proxy(port, f"http://127.0.0.1:{proxy_target}")
            stack.callback(stop, proxy)

        def hospital(i: int) -> ConnectorProcess:
            env = {"PHEMS_PARTICIPANT_NAME": SITES[i][0]}
            if i in public:
                env["PHEMS_PUBLIC_URL"] = public[i]
            return launch(
                tmp, f"hospital-{i}", ports[i], ports, authority, env=env,
                args=("--with-sample-data",),
            )  # fmt: skip

        def user() -> ConnectorProcess:
            did = f"did:web:127.0.0.1%3A{user_port}"
            return launch(
                tmp, "user", user_port, ports, authority,
                credentials={"membership.jwt": authority.credential(did)},
                env={"PHEMS_PARTICIPANT_NAME": "Research Lab"},
            )  # fmt: skip

        with ThreadPoolExecutor(5) as pool:
            futures = [pool.submit(hospital, i) for i in range(4)] + [pool.submit(user)]
        started: list[ConnectorProcess] = []
        for future in futures:  # every started one is stopped, even when another failed
            if future.exception() is None:
                stack.callback(stop, future.result().proc)
                started.append(future.result())
        for future in futures:
            future.result()
        hospitals, data_user = started[:4], started[4]
        uapi = Api(data_user)
        stack.callback(uapi.http.close)
        addresses = [public.get(i, h.url) + "/dsp/2025-1" for i, h in enumerate(hospitals)]
        # agreements with hospitals 0-2; hospital 3's catalog is only harvested: the first
        # test's query negotiates with it first
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(lambda a: _negotiate(uapi, a, SAMPLE_DATASET), addresses[:3]))
        harvested = uapi.post("/harvest", {"targets": [addresses[3]]})
        assert [t["state"] for t in harvested["targets"]] == ["ok"], harvested
        yield DataSpace(hospitals, data_user, uapi, watch, hold, truth, tmp)


def _run(space: DataSpace, mode: str, query: dict[str, Any] = QUERY, **extra: Any) -> Any:
    return space.uapi.post("/queries", {"query": query, "mode": mode, **extra}, expect=200)


def _cli(space: DataSpace, *args: str) -> subprocess.CompletedProcess[str]:
    """``phems-connector query run`` as a user runs it in the data user's connector's
    directory (its settings and management API key found from there)."""
    return subprocess.run(
        [sys.executable, "-m", "connector", "query", "run", *args],
        env=space.user.env,
        cwd=str(space.user.data_dir),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _counts(report: dict[str, Any]) -> list[int | None]:
    group = report["group"][0]
    strata = group["stratifier"][0]["stratum"]
    return [group["population"][0].get("count")] + [s["population"][0].get("count") for s in strata]


def _shares(space: DataSpace) -> list[dict[str, Any]]:
    """The shares hospital 0 answered, as its proxy saw them leave."""
    log = httpx.get(space.watch + "/__proxy/log", timeout=10).json()
    bodies = [
        json.loads(e["body"])
        for e in log
        if "/dataplane/transfers/" in e["path"] and e["status"] == 200 and "body" in e
    ]
    return [b for b in bodies if "maskedVector" in b]


def test_a_hospital_named_without_an_agreement_is_negotiated_with_first(space: DataSpace) -> None:
    newcomer = space.hospitals[3]
    before = {a["id"] for a in space.uapi.get("/agreements")}
    answer = _run(space, "plain", hospitals=[newcomer.did], timeoutSeconds=180)
    [status] = answer["hospitals"]
    assert status["status"] == "answered", answer
    assert status["datasetId"] == SAMPLE_DATASET and status["agreementId"] not in before
    agreements = {a["id"]: a for a in space.uapi.get("/agreements")}
    assert set(agreements) - before == {status["agreementId"]}  # exactly one new agreement
    assert answer["status"] == "complete"  # the one hospital asked answered
    # the next query without names asks all four, the newcomer under the same agreement
    everyone = _run(space, "plain", timeoutSeconds=180)
    statuses = {h["did"]: h for h in everyone["hospitals"]}
    assert len(statuses) == 4 and statuses[newcomer.did]["agreementId"] == status["agreementId"]


def test_a_hospital_not_in_the_harvested_catalog_gets_no_agreement(space: DataSpace) -> None:
    stranger = "did:web:127.0.0.1%3A9"
    answer = _run(space, "plain", hospitals=[stranger])
    [status] = answer["hospitals"]
    assert answer["status"] == "failed" and status["status"] == "no-agreement"
    assert "harvest its catalog first" in status["detail"]


def test_plain_and_secure_give_the_same_totals_up_to_the_noise(space: DataSpace) -> None:
    # the first query starts a transfer at every hospital and builds its tables
    plain = _run(space, "plain", timeoutSeconds=180)
    secure = _run(space, "secure", timeoutSeconds=180)
    assert plain["status"] == secure["status"] == "complete", (plain, secure)
    assert [h["status"] for h in secure["hospitals"]] == ["answered"] * 4
    assert secure["rounds"] == 1 and secure["breakdown"] == [] and secure["suppressed"] == {}
    # one noise draw per hospital behind both modes: they differ by the rounding to 10 only
    # (plain rounds each hospital's count, secure their sum)
    assert abs(plain["total"] - secure["total"]) <= 5 * (len(SITES) + 1)
    # ... and the sum is the true count plus four hospitals' noise (scale 4: epsilon 0.5 over
    # the count and the strata), rounded: 80 is seven standard deviations
    assert abs(secure["total"] - sum(space.truth)) <= 80, (secure["total"], space.truth)
    # the total is the count the report shows: rounded to 10 in both modes
    for answer in (plain, secure):
        assert answer["total"] == _counts(answer["measureReport"])[0] and answer["total"] % 10 == 0
    _, female, male = _counts(secure["measureReport"])
    assert female is not None and male is not None
    # the strata add up to the cohort but for twelve noise draws (sd 20) and the rounding
    assert abs(female + male - secure["total"]) <= 140
    # plain mode shows each hospital's own answer (each reports 20 or more)
    assert {b["did"] for b in plain["breakdown"]} == {h.did for h in space.hospitals}
    extension = secure["measureReport"]["extension"][-1]
    assert {e["url"] for e in extension["extension"]} >= {"mode", "rounds", "contributor"}


def test_in_secure_mode_the_data_user_receives_only_masked_vectors(space: DataSpace) -> None:
    plain = _run(space, "plain")
    [own] = [b for b in plain["breakdown"] if b["did"] == space.hospitals[0].did]
    own_counts = [c for c in _counts(own["measureReport"]) if c is not None]
    before = len(_shares(space))
    first, second = _run(space, "secure"), _run(space, "secure")
    shares = _shares(space)[before:]
    assert len(shares) == 2 and all(set(s) == SHARE_KEYS for s in shares)
    assert {s["participant"] for s in shares} == {space.hospitals[0].did}
    for share in shares:
        vector = share["maskedVector"]
        assert len(vector) == 3  # cohort, female, male
        # uniform on [0, 2^52): nothing near a count of patients (or its negative)
        assert all(2**24 < v < 2**52 - 2**24 for v in vector), vector
        assert not set(vector) & set(own_counts)
    # a new session masks the same noisy vector anew: other shares, the same total
    assert shares[0]["sessionId"] != shares[1]["sessionId"]
    assert not set(shares[0]["maskedVector"]) & set(shares[1]["maskedVector"])
    assert first["total"] == second["total"]


def test_query_run_secure_json_prints_the_combined_measure_report(space: DataSpace) -> None:
    cohort = space.tmp / "cohort.json"
    cohort.write_text(json.dumps(QUERY))
    done = _cli(space, str(cohort), "--secure", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["resourceType"] == "MeasureReport" and report["status"] == "complete"
    [answer] = [e for e in report["extension"] if e["url"].endswith("federated-answer")]
    parts = {(e["url"], str(next(v for k, v in e.items() if k.startswith("value")))) for e in
             answer["extension"]}  # fmt: skip
    assert ("mode", "secure") in parts and ("rounds", "1") in parts
    assert {v for k, v in parts if k == "contributor"} == {h.did for h in space.hospitals}
    assert report["group"][0]["population"][0]["count"] % 10 == 0


def test_query_run_refused_everywhere_exits_1_with_one_line(space: DataSpace) -> None:
    cohort = space.tmp / "marketing.json"
    cohort.write_text(json.dumps({**QUERY, "options": {"purpose": "marketing"}}))
    done = _cli(space, str(cohort), "--secure")
    assert done.returncode == 1 and done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("error: no hospital answered: ") and "Traceback" not in line
    assert line.count(": refused: ") == 4 and "purpose" in line


def test_a_hospital_killed_mid_round_is_left_out_and_named(space: DataSpace) -> None:
    victim = space.hospitals[3]
    httpx.post(space.hold + "/__proxy/hold", json={"substring": "/dataplane/transfers/"})
    result: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: result.update(_run(space, "secure")))
    worker.start()
    try:
        # round 1 waits for the victim's share; the others have answered theirs
        wait_for(lambda: httpx.get(space.hold + "/__proxy/held").json(), lambda n: n >= 1)
        victim.kill()
    finally:
        httpx.post(space.hold + "/__proxy/release")
        worker.join(120)
    assert result["status"] == "partial" and result["rounds"] == 2, result
    statuses = {h["did"]: h for h in result["hospitals"]}
    dead = statuses.pop(victim.did)
    assert dead["status"] == "unreachable" and dead["detail"].startswith("round 1: ")
    assert dead["detail"].endswith("; the round ran again without it")
    assert {h["status"] for h in statuses.values()} == {"answered"}
    text = json.dumps(result["measureReport"])
    assert f"{victim.did}: unreachable: round 1" in text  # the answer says so
    assert result["total"] is not None


def test_query_run_at_an_unreachable_hospital_exits_1_with_one_line(space: DataSpace) -> None:
    cohort = space.tmp / "cohort.json"
    cohort.write_text(json.dumps(QUERY))
    victim = space.hospitals[3]  # killed by the test before
    done = _cli(space, str(cohort), "--hospitals", victim.did)
    assert done.returncode == 1 and done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith(f"error: no hospital answered: {victim.did}: unreachable: ")


def test_query_run_with_the_budget_used_up_exits_1_with_one_line(space: DataSpace) -> None:
    hospital = space.hospitals[1]
    budget = {
        "@id": "offer-one-query",
        "@type": "Offer",
        "permission": [
            {
                "action": "use",
                "constraint": [
                    {"leftOperand": "purpose", "operator": "eq", "rightOperand": "research"},
                    {"leftOperand": PHEMS_NS + "membership", "operator": "eq",
                     "rightOperand": True},
                    {"leftOperand": PHEMS_NS + "outputType", "operator": "eq",
                     "rightOperand": "aggregate"},
                    {"leftOperand": PHEMS_NS + "epsilon", "operator": "lteq",
                     "rightOperand": 0.5},
                ],
            }
        ],
    }  # fmt: skip
    papi = Api(hospital)
    try:
        papi.post("/datasets", dataset("outpatients-one-query", [budget]), expect=201)
    finally:
        papi.http.close()
    agreement = _negotiate(space.uapi, hospital.url + "/dsp/2025-1", "outpatients-one-query")
    cohort = space.tmp / "cohort.json"
    cohort.write_text(json.dumps(QUERY))
    first = _cli(space, str(cohort), "--hospitals", agreement)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("plain query, complete, 1 round(s), total ")
    again = _cli(space, str(cohort), "--hospitals", agreement)
    assert again.returncode == 1 and again.stdout == ""
    [line] = again.stderr.splitlines()
    assert ": budget-exhausted: " in line and "epsilon" in line
