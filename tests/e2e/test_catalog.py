"""The catalog in running connectors: sample data, serialisations, validation on publish,
statistics, the DSP catalog with paging, harvesting with one hospital down, the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from rdflib import Graph
from rdflib.compare import isomorphic

from catalog.rdf import dataset_iris, from_graph
from catalog.validation import validate
from catalog.vocab import HEALTHDCATAP, HYDRA, RDF
from connector.clock import SystemClock
from connector.identity.credentials import read_credential_files
from connector.identity.keys import load_or_create_keys
from connector.identity.tokens import TokenIssuer
from tests.conftest import free_port
from tests.e2e.conftest import RESEARCH_OFFER, Api, Authority, Federation, dataset, launch, wait_for
from tests.processes import REPO, ConnectorProcess, stop

SAMPLE = "paediatric-respiratory-2019-2024"


def _get(c: ConnectorProcess, path: str, accept: str) -> httpx.Response:
    return httpx.get(c.url + path, headers={"Accept": accept}, timeout=30)


def _signed(user: ConnectorProcess, callee_did: str) -> dict[str, str]:
    """A DSP Authorization header of the data user's connector (its own keys and credentials)."""
    keys = load_or_create_keys(user.data_dir / "keys")
    issuer = TokenIssuer(
        user.did, keys, 120, read_credential_files(user.data_dir / "credentials"), SystemClock()
    )
    return {"Authorization": f"Bearer {issuer.issue(callee_did)}"}


CATALOG_REQUEST = {
    "@context": ["https://w3id.org/dspace/2025/1/context.jsonld"],
    "@type": "CatalogRequestMessage",
}


def test_sample_catalog_conforms_with_computed_statistics(federation: Federation) -> None:
    r = _get(federation.north, "/catalog", "text/turtle")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/turtle")
    graph = Graph().parse(data=r.text, format="turtle")
    report = validate(graph)
    assert report.conforms, [str(v) for v in report.violations]
    [iri] = dataset_iris(graph)
    ds = from_graph(graph, iri)
    assert ds.identifier == SAMPLE and ds.publisher.name == "Kinderklinik Nord"
    assert ds.number_of_unique_individuals == 200  # the sample generator's 200 children
    assert ds.number_of_records and ds.number_of_records > 1000
    assert ds.min_typical_age is not None and ds.max_typical_age is not None
    assert 0 <= ds.min_typical_age < ds.max_typical_age <= 17
    assert {c.value for c in ds.coding_systems} >= {"SNOMED-CT", "LOINC", "ICD-10"}
    assert ds.temporal_start and ds.temporal_start.day == 1  # coarsened to months
    # ckanext-dcat paging description
    assert (None, RDF.type, HYDRA.PagedCollection) in graph
    assert (None, HEALTHDCATAP.numberOfUniqueIndividuals, None) in graph


def test_content_negotiation(federation: Federation) -> None:
    path = f"/catalog/datasets/{SAMPLE}"
    turtle = Graph().parse(data=_get(federation.north, path, "text/turtle").text, format="turtle")
    jsonld = _get(federation.north, path, "application/ld+json")
    assert jsonld.headers["content-type"].startswith("application/ld+json")
    assert isomorphic(turtle, Graph().parse(data=jsonld.text, format="json-ld"))
    xml = _get(federation.north, path, "application/rdf+xml")
    assert isomorphic(turtle, Graph().parse(data=xml.text, format="xml"))
    html = _get(federation.north, path, "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8")
    assert html.headers["content-type"].startswith("text/html")
    assert "Paediatric respiratory care cohort" in html.text and "Variables" in html.text
    assert "Research only" in html.text and "Request access" not in html.text  # its own
    assert html.headers["vary"] == "Accept"
    refused = _get(federation.north, path, "application/pdf")
    assert refused.status_code == 406
    assert refused.headers["content-type"] == "application/problem+json"
    assert _get(federation.north, "/catalog?page=2", "text/turtle").status_code == 404
    assert _get(federation.north, "/catalog/datasets/nope", "text/turtle").status_code == 404


def test_member_negotiates_for_the_sample_dataset_without_setup(federation: Federation) -> None:
    north_dsp = federation.north.url + "/dsp/2025-1"
    catalog = federation.uapi.post("/catalog/request", {"counterpartyAddress": north_dsp})
    [ds] = catalog["dataset"]
    assert ds["@id"] == SAMPLE and ds["dct:title"] == "Paediatric respiratory care cohort"
    [offer] = [o for o in ds["hasPolicy"] if o["@id"].endswith("-aggregate")]
    n = federation.uapi.post(
        "/negotiations",
        {"counterpartyAddress": north_dsp, "offer": offer | {"target": SAMPLE}},
        expect=201,
    )
    final = wait_for(
        lambda: federation.uapi.get(f"/negotiations/{n['id']}"),
        lambda v: v["state"] in ("FINALIZED", "TERMINATED"),
    )
    assert final["state"] == "FINALIZED", final


def _problem(r: httpx.Response) -> str:
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"
    return str(r.json()["detail"])


def test_management_refuses_datasets_with_violations(federation: Federation) -> None:
    bad = dataset("bad-spatial")
    bad["metadata"] = bad["metadata"] | {"spatial": ["http://example.org/somewhere"]}
    detail = _problem(federation.sapi.http.post("/management/datasets", json=bad))
    assert "dct:spatial" in detail and "dct:Location" in detail
    no_contact = dataset("no-contact")
    no_contact["metadata"] = no_contact["metadata"] | {"contact_point": {}}
    assert "vcard:hasEmail" in _problem(
        federation.sapi.http.post("/management/datasets", json=no_contact)
    )
    no_hdab = dataset("no-hdab")
    del no_hdab["metadata"]["hdab"]
    assert "hdab" in _problem(federation.sapi.http.post("/management/datasets", json=no_hdab))
    typed = dataset("typed-statistics")
    typed["metadata"] = typed["metadata"] | {"number_of_records": 5}
    assert "computed from the data" in _problem(
        federation.sapi.http.post("/management/datasets", json=typed)
    )
    assert federation.sapi.get("/datasets") == []  # nothing was stored


def test_refresh_statistics(federation: Federation) -> None:
    before = federation.napi.get(f"/datasets/{SAMPLE}")
    after = federation.napi.post(f"/datasets/{SAMPLE}/refresh-statistics", expect=200)
    assert after["metadata"]["number_of_unique_individuals"] == 200
    assert after["modifiedAt"] > before["modifiedAt"]
    assert (
        federation.napi.http.post("/management/datasets/nope/refresh-statistics").status_code == 404
    )


def test_dsp_catalog_pages_with_link_headers(federation: Federation) -> None:
    for i in range(3):
        federation.sapi.post("/datasets", dataset(f"cohort-{i}"), expect=201)
    url = federation.south.url + "/dsp/2025-1/catalog/request"
    seen: list[str] = []
    next_url: str | None = url + "?limit=2"
    pages = 0
    while next_url:
        r = httpx.post(
            next_url, json=CATALOG_REQUEST, headers=_signed(federation.user, federation.south.did)
        )
        assert r.status_code == 200, r.text
        seen += [d["@id"] for d in r.json()["dataset"]]
        links = httpx.Response(200, headers={"link": r.headers.get("link", "")}).links
        if pages == 1:
            assert "prev" in links
        next_url = links.get("next", {}).get("url")
        pages += 1
    assert seen == ["cohort-0", "cohort-1", "cohort-2"] and pages == 2
    # Eclipse EDC sends a QuerySpec with every catalog request: its paging is honoured.
    query_spec = {"@type": "QuerySpec", "offset": 1, "limit": 1, "filterExpression": []}
    edc = httpx.post(
        url,
        json=CATALOG_REQUEST | {"filter": [query_spec | {"sortOrder": "ASC"}]},
        headers=_signed(federation.user, federation.south.did),
    )
    assert edc.status_code == 200, edc.text
    assert [d["@id"] for d in edc.json()["dataset"]] == ["cohort-1"]
    assert "offset=2&limit=1" in edc.headers["link"]
    for narrowing in ({"q": 1}, query_spec | {"filterExpression": [{"operandLeft": "id"}]}):
        filtered = httpx.post(
            url,
            json=CATALOG_REQUEST | {"filter": [narrowing]},
            headers=_signed(federation.user, federation.south.did),
        )
        assert filtered.status_code == 400 and filtered.json()["@type"] == "CatalogError"
    one = httpx.get(
        federation.south.url + "/dsp/2025-1/catalog/datasets/cohort-1",
        headers=_signed(federation.user, federation.south.did),
    )
    assert one.status_code == 200 and one.json()["hasPolicy"][0]["@id"] == RESEARCH_OFFER["@id"]


def _harvest(federation: Federation) -> dict[str, Any]:
    report: dict[str, Any] = federation.uapi.post("/harvest", expect=200)
    return {t["address"]: t for t in report["targets"]}


def test_harvest_three_connectors_one_down(federation: Federation) -> None:
    if not federation.sapi.get("/datasets"):
        federation.sapi.post("/datasets", dataset("cohort-0"), expect=201)
    north, south = (c.url + "/dsp/2025-1" for c in (federation.north, federation.south))
    first = _harvest(federation)
    assert first[north]["state"] == "ok" and first[north]["new"] == 1
    assert first[south]["state"] == "ok" and first[south]["new"] >= 1
    assert first[federation.dead]["state"] == "failed"
    assert "catalog request failed" in first[federation.dead]["error"]
    assert federation.uapi.get("/harvest")["progress"] == "3/3"

    again = _harvest(federation)
    assert again[south]["new"] == 0 and again[south]["updated"] == 0
    assert again[south]["unchanged"] == first[south]["datasets"]

    changed = dataset("cohort-0") | {"title": "Paediatric asthma cohort, second edition"}
    r = federation.sapi.http.put("/management/datasets/cohort-0", json=changed)
    assert r.status_code == 200, r.text
    third = _harvest(federation)
    assert (
        third[south]["updated"] == 1 and third[south]["unchanged"] == first[south]["datasets"] - 1
    )

    page = _get(federation.user, "/catalog?q=second+edition", "text/html").text
    assert "second edition" in page and "Ospedale Pediatrico Sud" in page
    both = _get(federation.user, "/catalog", "text/html").text
    assert "Kinderklinik Nord" in both and "Paediatric respiratory care cohort" in both


def _cli(
    *args: str, data_dir: Path | None = None, command: str = "validate", **env_extra: str
) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", **env_extra}
    if data_dir is not None:
        env["PHEMS_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "connector", "catalog", command, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_cli_catalog_validate(federation: Federation, tmp_path: Path) -> None:
    own = _cli(data_dir=federation.north.data_dir)
    assert own.returncode == 0, own.stdout + own.stderr
    assert "conforms: 0 violation(s)" in own.stdout
    good = tmp_path / "good.ttl"
    good.write_text(_get(federation.north, f"/catalog/datasets/{SAMPLE}", "text/turtle").text)
    assert _cli(str(good)).returncode == 0
    graph = Graph().parse(good, format="turtle")
    graph.remove((None, HEALTHDCATAP.hdab, None))
    bad = tmp_path / "bad.ttl"
    bad.write_text(graph.serialize(format="turtle"))
    result = _cli(str(bad))
    assert result.returncode == 1
    assert "does NOT conform" in result.stdout and "hdab" in result.stdout
    missing = _cli(str(tmp_path / "missing.ttl"))
    assert missing.returncode == 2
    assert missing.stderr.strip().count("\n") == 0 and "no such file" in missing.stderr


def test_sample_data_is_idempotent_on_restart(tmp_path: Path, authority: Authority) -> None:
    port = free_port()

    def run_once() -> tuple[list[dict[str, Any]], dict[str, float]]:
        c = launch(tmp_path, "solo", port, [port], authority, args=("--with-sample-data",))
        api = Api(c)
        try:
            files = {p.name: p.stat().st_mtime for p in (c.data_dir / "fhir").iterdir()}
            return api.get("/datasets"), files
        finally:
            api.http.close()
            stop(c.proc)

    first, first_files = run_once()
    second, second_files = run_once()
    assert [d["id"] for d in first] == [SAMPLE]
    assert second == first  # same record, same dct:modified: nothing republished
    assert second_files == first_files and "Patient.000.ndjson" in first_files


def test_cli_catalog_harvest(federation: Federation) -> None:
    """The data user's CLI harvests with the connector's own identity and store."""
    user = federation.user
    env = {k: v for k, v in user.env.items() if k.startswith("PHEMS_")}
    result = _cli(command="harvest", **env)
    assert result.returncode == 1, result.stdout + result.stderr  # the dead hospital
    lines = result.stdout.splitlines()
    north = federation.north.url + "/dsp/2025-1"
    assert any(line.startswith(f"{north}: ok, 1 datasets") for line in lines), lines
    assert any(line.startswith(f"{federation.dead}: FAILED") for line in lines), lines
    ok = _cli("--target", north, command="harvest", **env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
