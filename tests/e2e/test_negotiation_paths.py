"""More paths between two real connectors: approval by a person, termination from each state
where it is allowed (by either side), transfer suspension, and offline agreement proofs."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import ASTHMA_QUERY, RESEARCH_OFFER, Pair, dataset, wait_for
from tests.processes import REPO

APPROVAL_OFFER = RESEARCH_OFFER | {
    "@id": "offer-with-approval",
    "https://w3id.org/phems/ns/approvalRequired": True,
}
DSP = "/dsp/2025-1"


def _request(pair: Pair, offer: dict[str, Any]) -> dict[str, Any]:
    body = {"counterpartyAddress": pair.provider.url + DSP, "offer": offer | {"target": "ds"}}
    return pair.capi.post("/negotiations", body, expect=201)  # type: ignore[no-any-return]


def _state(api: Any, nid: str) -> str:
    return str(api.get(f"/negotiations/{nid}")["state"])


def _provider_twin(pair: Pair, consumer_pid: str) -> dict[str, Any]:
    found = wait_for(
        lambda: [n for n in pair.papi.get("/negotiations") if n["consumerPid"] == consumer_pid],
        lambda v: len(v) == 1,
    )
    return found[0]  # type: ignore[no-any-return]


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``phems-connector ARGS`` (with a connector's environment, for its database)."""
    return subprocess.run(
        [sys.executable, "-m", "connector", *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )


def _verify_cli(path: Path) -> subprocess.CompletedProcess[str]:
    return _cli("agreements", "verify", str(path))


def test_approval_terminations_and_proofs(pair: Pair, tmp_path: Path) -> None:
    pair.papi.post("/datasets", dataset("ds", [RESEARCH_OFFER, APPROVAL_OFFER]), expect=201)

    # 1. Held for approval, approved by a person: FINALIZED.
    n = _request(pair, APPROVAL_OFFER)
    twin = _provider_twin(pair, n["id"])
    pending = wait_for(lambda: pair.papi.get("/negotiations?pending=true"), lambda v: len(v) == 1)
    assert pending[0]["id"] == twin["id"] and pending[0]["state"] == "REQUESTED"
    pair.papi.post(f"/negotiations/{twin['id']}/approve", expect=200)
    wait_for(lambda: _state(pair.capi, n["id"]), lambda s: s == "FINALIZED")
    assert pair.papi.post(f"/negotiations/{twin['id']}/approve")["status"] == 409

    # 2. Held for approval, refused by the provider (provider terminates in REQUESTED).
    n = _request(pair, APPROVAL_OFFER)
    twin = _provider_twin(pair, n["id"])
    pair.papi.post(f"/negotiations/{twin['id']}/terminate", {"reason": "DPO: no"}, expect=200)
    done = wait_for(
        lambda: pair.capi.get(f"/negotiations/{n['id']}"), lambda v: v["state"] == "TERMINATED"
    )
    assert done["terminationReason"] == ["DPO: no"]

    # 3. Consumer withdraws while its request waits (consumer terminates in REQUESTED).
    n = _request(pair, APPROVAL_OFFER)
    twin = _provider_twin(pair, n["id"])
    wait_for(lambda: _state(pair.capi, n["id"]), lambda s: s == "REQUESTED")
    wait_for(lambda: pair.capi.get(f"/negotiations/{n['id']}"), lambda v: v["providerPid"])
    pair.capi.post(f"/negotiations/{n['id']}/terminate", {"reason": "changed my mind"}, expect=200)
    wait_for(lambda: _state(pair.papi, twin["id"]), lambda s: s == "TERMINATED")

    # 4./5. Provider-initiated offers, terminated in OFFERED by each side.
    for side in ("consumer", "provider"):
        offered = pair.papi.post(
            "/negotiations/offers",
            {
                "counterpartyAddress": pair.consumer.url + DSP,
                "datasetId": "ds",
                "offerId": "offer-research",
            },
            expect=201,
        )
        mine = wait_for(
            lambda o=offered: [
                x for x in pair.capi.get("/negotiations") if x["providerPid"] == o["id"]
            ],
            lambda v: len(v) == 1 and v[0]["state"] == "OFFERED",
        )[0]
        wait_for(lambda o=offered: _state(pair.papi, o["id"]), lambda s: s == "OFFERED")
        if side == "consumer":
            pair.capi.post(f"/negotiations/{mine['id']}/terminate", {"reason": "no"}, expect=200)
            wait_for(lambda o=offered: _state(pair.papi, o["id"]), lambda s: s == "TERMINATED")
        else:
            pair.papi.post(f"/negotiations/{offered['id']}/terminate", {"reason": "no"}, expect=200)
            wait_for(lambda m=mine: _state(pair.capi, m["id"]), lambda s: s == "TERMINATED")

    # A terminated negotiation cannot be terminated again.
    r = pair.capi.post(f"/negotiations/{n['id']}/terminate", {"reason": "again"})
    assert r["status"] == 409

    # 6. The agreement of (1) proves itself offline, and any change to it is detected.
    [agreement] = pair.capi.get("/agreements")
    proof = pair.capi.get(f"/agreements/{agreement['id']}/export")
    good = tmp_path / "agreement.json"
    good.write_text(json.dumps(proof))
    ok = _verify_cli(good)
    assert ok.returncode == 0, ok.stderr
    assert pair.provider.did in ok.stdout and pair.consumer.did in ok.stdout
    tampered = json.loads(json.dumps(proof))
    tampered["agreement"]["target"] = "another-dataset"
    bad = tmp_path / "tampered.json"
    bad.write_text(json.dumps(tampered))
    refused = _verify_cli(bad)
    assert refused.returncode == 1 and "NOT valid" in refused.stderr
    # Every single byte of a signature matters.
    sig = proof["consumerSignature"]
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    bad.write_text(json.dumps(proof | {"consumerSignature": flipped}))
    assert _verify_cli(bad).returncode == 1

    # 7. Transfers: suspended by the provider, resumed, then terminated by the consumer.
    t = pair.capi.post(
        "/transfers", {"agreementId": agreement["id"], "format": "FHIR-Aggregate-PULL"}, expect=201
    )
    wait_for(lambda: pair.capi.get(f"/transfers/{t['id']}")["state"], lambda s: s == "STARTED")
    [pt] = [x for x in pair.papi.get("/transfers") if x["consumerPid"] == t["id"]]
    first_address = pair.capi.get(f"/transfers/{t['id']}")["dataAddress"]
    pair.papi.post(f"/transfers/{pt['id']}/suspend", {"reason": "maintenance"}, expect=200)
    wait_for(lambda: pair.capi.get(f"/transfers/{t['id']}")["state"], lambda s: s == "SUSPENDED")
    # Only the party that suspended resumes; nothing changes on a refused resume.
    refused = pair.capi.post(f"/transfers/{t['id']}/resume", {}, expect=409)
    assert "only the party that suspended it resumes it" in refused["detail"]
    assert pair.capi.get(f"/transfers/{t['id']}")["state"] == "SUSPENDED"
    pair.papi.post(f"/transfers/{pt['id']}/resume", {}, expect=200)
    resumed = wait_for(
        lambda: pair.capi.get(f"/transfers/{t['id']}"), lambda v: v["state"] == "STARTED"
    )
    # The provider's resume carries a fresh data plane token (the old one may have expired).
    token = {p["name"]: p["value"] for p in resumed["dataAddress"]["endpointProperties"]}
    old = {p["name"]: p["value"] for p in first_address["endpointProperties"]}
    assert token["authorization"] != old["authorization"]
    # The consumer suspends and resumes its side too.
    pair.capi.post(f"/transfers/{t['id']}/suspend", {"reason": "pause"}, expect=200)
    wait_for(lambda: pair.papi.get(f"/transfers/{pt['id']}")["state"], lambda s: s == "SUSPENDED")
    pair.papi.post(f"/transfers/{pt['id']}/resume", {}, expect=409)
    pair.capi.post(f"/transfers/{t['id']}/resume", {}, expect=200)
    wait_for(lambda: pair.papi.get(f"/transfers/{pt['id']}")["state"], lambda s: s == "STARTED")
    pair.capi.post(f"/transfers/{t['id']}/resume", {}, expect=409)  # not SUSPENDED any more
    pair.capi.post(f"/transfers/{t['id']}/terminate", {"reason": "done"}, expect=200)
    wait_for(lambda: pair.papi.get(f"/transfers/{pt['id']}")["state"], lambda s: s == "TERMINATED")

    # Every step is in the provider's audit log, and the chain verifies.
    audit = _cli("audit", "verify", env=pair.provider.env)
    assert audit.returncode == 0, audit.stderr


def test_count_limits_transfers_and_bad_addresses_are_400(pair: Pair) -> None:
    once = RESEARCH_OFFER | {
        "@id": "offer-once",
        "permission": [
            {
                **RESEARCH_OFFER["permission"][0],
                "constraint": [
                    *RESEARCH_OFFER["permission"][0]["constraint"],
                    {"leftOperand": "count", "operator": "lteq", "rightOperand": 1},
                ],
            }
        ],
    }
    pair.papi.post("/datasets", dataset("ds", [once]), expect=201)
    n = _request(pair, once)
    wait_for(lambda: _state(pair.capi, n["id"]), lambda s: s == "FINALIZED")
    [agreement] = wait_for(lambda: pair.capi.get("/agreements"), lambda v: len(v) == 1)
    states = []
    for _ in range(2):
        t = pair.capi.post(
            "/transfers",
            {"agreementId": agreement["id"], "format": "FHIR-Aggregate-PULL"},
            expect=201,
        )
        states.append(
            wait_for(
                lambda t=t: pair.capi.get(f"/transfers/{t['id']}"),
                lambda v: v["state"] in ("STARTED", "TERMINATED"),
            )
        )
        if len(states) == 1:  # the one use: a data plane call (a transfer start spends none)
            used = pair.capi.http.post(f"/management/transfers/{t['id']}/data", json=ASTHMA_QUERY)
            assert used.status_code == 200, used.text
            again = pair.capi.http.post(f"/management/transfers/{t['id']}/data", json=ASTHMA_QUERY)
            assert again.status_code == 429 and "count" in again.json()["detail"], again.text
    assert [s["state"] for s in states] == ["STARTED", "TERMINATED"]
    assert "count" in " ".join(states[1]["reason"])
    # The provider counted exactly one use.
    assert pair.papi.get(f"/agreements/{agreement['id']}")["uses"] == 1

    r = pair.capi.http.post(
        "/management/negotiations", json={"counterpartyAddress": "notaurl", "offer": once}
    )
    assert r.status_code == 400 and "counterpartyAddress" in r.json()["detail"]


def test_data_plane_tokens_end_with_the_agreements_window(pair: Pair) -> None:
    """The consumer's management API fetches fresh tokens from the provider, which issues them
    only while the agreement's dateTime window is open, and no longer than it."""
    end = datetime.now(UTC) + timedelta(seconds=10)
    window = {"leftOperand": "dateTime", "operator": "lt", "rightOperand": end.isoformat()}
    brief = RESEARCH_OFFER | {
        "@id": "offer-brief",
        "permission": [
            {
                **RESEARCH_OFFER["permission"][0],
                "constraint": [*RESEARCH_OFFER["permission"][0]["constraint"], window],
            }
        ],
    }
    pair.papi.post("/datasets", dataset("ds", [brief]), expect=201)
    n = _request(pair, brief)
    wait_for(lambda: _state(pair.capi, n["id"]), lambda s: s == "FINALIZED")
    [agreement] = wait_for(lambda: pair.capi.get("/agreements"), lambda v: len(v) == 1)
    t = pair.capi.post(
        "/transfers", {"agreementId": agreement["id"], "format": "FHIR-Aggregate-PULL"}, 201
    )
    started = wait_for(
        lambda: pair.capi.get(f"/transfers/{t['id']}"), lambda v: v["state"] != "REQUESTED"
    )
    assert started["state"] == "STARTED", f"slower than the 10 s window? {started}"
    first = _props(started)
    assert 0 <= int(first["expiresIn"]) <= 10  # not the usual 900

    fresh = pair.capi.post(f"/transfers/{t['id']}/token", expect=200)
    assert _props(fresh)["authorization"] != first["authorization"]
    assert int(_props(fresh)["expiresIn"]) <= 10
    pull = httpx.post(
        fresh["dataAddress"]["endpoint"],
        headers={"Authorization": f"Bearer {_props(fresh)['authorization']}"},
    )
    assert pull.status_code == 400 and "not JSON" in pull.text, pull.text  # authorised

    # Once the window has closed the provider refuses, naming the constraint.
    def refresh() -> httpx.Response:
        return pair.capi.http.post(f"/management/transfers/{t['id']}/token")

    refused = wait_for(refresh, lambda r: r.status_code != 200, timeout=20)
    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert "refused a fresh token" in refused.json()["detail"]
    assert "dateTime" in refused.json()["detail"]
    exported = _cli("audit", "export", env=pair.provider.env)
    assert exported.returncode == 0, exported.stderr
    assert "transfer.token-refused" in exported.stdout


def _props(transfer: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p["value"] for p in transfer["dataAddress"]["endpointProperties"]}
