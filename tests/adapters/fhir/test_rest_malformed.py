"""A server answering JSON of the wrong shape or the wrong resource type: a ``FhirSourceError``
naming the server's fault (502 through the connector), never an ``AttributeError`` (a 500)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web

from adapters.fhir.retry import RetryPolicy
from adapters.fhir_rest import FhirRestSource
from connector.errors import FhirSourceError
from tests.adapters.fhir.data import collect
from tests.adapters.fhir.fake import FakeServer, bundle, json_response, patients

FAST = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02)
PATIENT = {"resourceType": "Patient", "id": "a"}


@pytest.fixture
async def source(fake: FakeServer) -> AsyncIterator[FhirRestSource]:
    impl = FhirRestSource(fake.base, retry=FAST)
    try:
        yield impl
    finally:
        await impl.aclose()


def answer(fake: FakeServer, path: str, body: bytes | dict[str, Any], status: int = 200) -> None:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)

    async def handler(request: web.Request) -> web.Response:
        return json_response(raw, status)

    fake.routes[path] = handler


def searchset(**fields: Any) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", **fields}


MALFORMED_BUNDLES = {
    "entry items are not objects": (searchset(entry=["Patient/a", 7]), "entry[0] is a string"),
    "entry is an object": (searchset(entry={"resource": PATIENT}), "entry is an object"),
    "search is a string": (
        searchset(entry=[{"resource": PATIENT, "search": "match"}]),
        "entry[0].search is a string",
    ),
    "unknown search mode": (
        searchset(entry=[{"resource": PATIENT, "search": {"mode": "maybe"}}]),
        "search.mode is 'maybe'",
    ),
    "resource is a string": (searchset(entry=[{"resource": "Patient/a"}]), "resource is a string"),
    "resource without a type": (searchset(entry=[{"resource": {"id": "a"}}]), "no resourceType"),
    "match without an id": (
        searchset(entry=[{"resource": {"resourceType": "Patient"}}]),
        "entry[0].resource has no id",
    ),
    "total is a string": (searchset(total="3", entry=[]), "total is '3'"),
    "total is negative": (searchset(total=-1), "total is -1"),
    "link is a string": (searchset(link="http://x/next"), "link is a string"),
    "link items are not objects": (searchset(link=[["next", "u"]]), "link[0] is an array"),
    "link without a url": (searchset(link=[{"relation": "next"}]), "link[0] needs a string"),
    "outcome issue is an object": (
        searchset(
            entry=[
                {
                    "resource": {"resourceType": "OperationOutcome", "issue": {"severity": "x"}},
                    "search": {"mode": "outcome"},
                }
            ]
        ),
        "issue is an object",
    ),
    "outcome issues are not objects": (
        searchset(entry=[{"resource": {"resourceType": "OperationOutcome", "issue": ["broken"]}}]),
        "issue[0] is a string",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_BUNDLES))
async def test_malformed_search_bundle_is_the_servers_fault(
    fake: FakeServer, source: FhirRestSource, case: str
) -> None:
    doc, problem = MALFORMED_BUNDLES[case]
    answer(fake, "Patient", doc)
    with pytest.raises(FhirSourceError) as caught:
        await collect(source.search("Patient"))
    message = str(caught.value)
    assert "search Patient?_count=1000: the server answered a malformed" in message
    assert problem in message
    assert fake.base in message
    assert caught.value.status == 502


@pytest.mark.parametrize("case", sorted(MALFORMED_BUNDLES))
async def test_malformed_count_bundle_is_the_servers_fault(
    fake: FakeServer, source: FhirRestSource, case: str
) -> None:
    doc, problem = MALFORMED_BUNDLES[case]
    answer(fake, "Patient", doc)
    with pytest.raises(FhirSourceError, match="count Patient: the server answered a malformed"):
        await source.count("Patient")


async def test_a_malformed_second_page_is_refused_after_the_first(
    fake: FakeServer, source: FhirRestSource
) -> None:
    async def patient(request: web.Request) -> web.Response:
        if request.query.get("page") == "2":
            return json_response(orjson.dumps(searchset(entry={"oops": True})))
        return json_response(bundle(patients("a"), next_url=f"{fake.base}/Patient?page=2"))

    fake.routes["Patient"] = patient
    received = []
    with pytest.raises(FhirSourceError, match="entry is an object"):
        async for resource in source.search("Patient"):
            received.append(resource["id"])
    assert received == ["a"]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"[]", "no Bundle but an array"),
        (b'"Bundle"', "no Bundle but a string"),
        (orjson.dumps({"resourceType": "OperationOutcome"}), "no Bundle but OperationOutcome"),
        (b"<Bundle/>", "response is not JSON"),
    ],
)
async def test_an_answer_that_is_no_bundle(
    fake: FakeServer, source: FhirRestSource, body: bytes, problem: str
) -> None:
    answer(fake, "Patient", body)
    with pytest.raises(FhirSourceError, match=problem):
        await collect(source.search("Patient"))


async def test_a_search_for_patients_answered_with_observations_is_refused(
    fake: FakeServer, source: FhirRestSource
) -> None:
    observation = {"resourceType": "Observation", "id": "o1", "status": "final"}
    answer(fake, "Patient", searchset(total=1, entry=[{"resource": observation}]))
    with pytest.raises(FhirSourceError) as caught:
        await collect(source.search("Patient"))
    assert "answered a Observation resource to a search for Patient" in str(caught.value)
    assert caught.value.status == 502
    # ... also when the server calls it a match.
    entry = {"resource": observation, "search": {"mode": "match"}}
    answer(fake, "Patient", searchset(total=1, entry=[entry]))
    with pytest.raises(FhirSourceError, match="to a search for Patient"):
        await collect(source.search("Patient"))


async def test_includes_and_outcomes_are_not_matches(
    fake: FakeServer, source: FhirRestSource
) -> None:
    org = {"resourceType": "Organization", "id": "o"}
    warning = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "warning", "code": "informational"}],
    }
    entries = [
        {"resource": PATIENT, "search": {"mode": "match"}},
        {"resource": org, "search": {"mode": "include"}},
        {"resource": org | {"id": "p"}},  # no mode: an include, since the search asked for them
        {"resource": warning},  # no mode: an OperationOutcome is an outcome
    ]
    answer(fake, "Patient", searchset(total=1, entry=entries))
    got = await collect(source.search("Patient", {"_include": "Patient:organization"}))
    assert got == [PATIENT]
    # Without _include, a resource of another type and no mode is a wrong answer.
    answer(fake, "Patient", searchset(total=1, entry=entries[:1] + entries[2:3]))
    with pytest.raises(FhirSourceError, match="answered a Organization resource"):
        await collect(source.search("Patient"))


async def test_an_error_outcome_without_a_mode_fails_the_search(
    fake: FakeServer, source: FhirRestSource
) -> None:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "too-costly", "diagnostics": "too many matches"}],
    }
    answer(fake, "Patient", searchset(entry=[{"resource": PATIENT}, {"resource": outcome}]))
    with pytest.raises(FhirSourceError, match="too many matches"):
        await collect(source.search("Patient"))


def capability(rest: Any) -> dict[str, Any]:
    return {"resourceType": "CapabilityStatement", "status": "active", "rest": rest}


MALFORMED_CAPABILITIES = {
    "rest items are strings": (capability(["server"]), "rest[0] is a string"),
    "rest is an object": (capability({"mode": "server"}), "rest is an object"),
    "resource items are strings": (
        capability([{"mode": "server", "resource": ["Patient"]}]),
        "rest[0].resource[0] is a string",
    ),
    "interaction is an object": (
        capability(
            [{"mode": "server", "resource": [{"type": "Patient", "interaction": {"code": "x"}}]}]
        ),
        "rest[0].resource[0].interaction is an object",
    ),
    "interaction items are strings": (
        capability(
            [{"mode": "server", "resource": [{"type": "Patient", "interaction": ["search-type"]}]}]
        ),
        "rest[0].resource[0].interaction[0] is a string",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_CAPABILITIES))
async def test_malformed_capability_statement_is_the_servers_fault(
    fake: FakeServer, source: FhirRestSource, case: str
) -> None:
    doc, problem = MALFORMED_CAPABILITIES[case]
    answer(fake, "metadata", doc)
    for call in (source.resource_types, source.version):
        with pytest.raises(FhirSourceError) as caught:
            await call()
        message = str(caught.value)
        assert "GET metadata: the server answered a malformed CapabilityStatement" in message
        assert problem in message
        assert caught.value.status == 502


async def test_metadata_that_is_no_capability_statement(
    fake: FakeServer, source: FhirRestSource
) -> None:
    answer(fake, "metadata", {"resourceType": "Bundle"})
    with pytest.raises(FhirSourceError, match="answered no CapabilityStatement"):
        await source.resource_types()


def declares(*types: str) -> dict[str, Any]:
    resources = [{"type": t, "interaction": [{"code": "search-type"}]} for t in types]
    return capability([{"mode": "server", "resource": resources}])


def counting(counts: dict[str, int], fake: FakeServer) -> None:
    """Route ``<Type>`` for each type in ``counts``: ``_summary=count`` answers its count."""
    for rtype, n in counts.items():

        async def handler(request: web.Request, n: int = n, rtype: str = rtype) -> web.Response:
            if request.query.get("_summary") == "count":
                return json_response(orjson.dumps(searchset(total=n)))
            entry = {"resource": {"resourceType": rtype, "id": "x", "meta": {"lastUpdated": "t"}}}
            return json_response(orjson.dumps(searchset(entry=[entry] if n else [])))

        fake.routes[rtype] = handler


async def test_resource_types_include_types_the_server_stores_but_does_not_declare(
    fake: FakeServer, source: FhirRestSource
) -> None:
    answer(fake, "metadata", declares("Patient", "Observation"))
    counting({"Patient": 4, "Observation": 0, "Goal": 2, "CareTeam": 0}, fake)
    assert await source.resource_types() == ["Goal", "Patient"]
    # Every other R4 type was asked about once; the 404s are remembered, Goal and CareTeam
    # (searchable) are asked again.
    assert len(fake.hits["Account"]) == 1
    first = await source.version()
    assert await source.resource_types() == ["Goal", "Patient"]
    assert len(fake.hits["Account"]) == 1
    assert len([q for q in fake.queries["CareTeam"] if q.get("_summary") == "count"]) == 3
    # A new Goal changes the version although no CapabilityStatement mentions Goal.
    counting({"Goal": 3}, fake)
    assert await source.version() != first


async def test_a_malformed_answer_about_an_undeclared_type_is_not_skipped(
    fake: FakeServer, source: FhirRestSource
) -> None:
    answer(fake, "metadata", declares("Patient"))
    counting({"Patient": 1}, fake)
    answer(fake, "Goal", searchset(total="many"))
    with pytest.raises(FhirSourceError, match="count Goal: .*total is 'many'"):
        await source.resource_types()


async def test_malformed_meta_in_version(fake: FakeServer, source: FhirRestSource) -> None:
    answer(fake, "metadata", declares("Patient"))

    async def patient(request: web.Request) -> web.Response:
        if request.query.get("_summary") == "count":
            return json_response(orjson.dumps(searchset(total=1)))
        return json_response(orjson.dumps(searchset(entry=[{"resource": PATIENT | {"meta": 1}}])))

    fake.routes["Patient"] = patient
    with pytest.raises(FhirSourceError, match="version Patient: .*meta is a number"):
        await source.version()


async def test_an_error_body_of_the_wrong_shape_still_gives_the_status(
    fake: FakeServer, source: FhirRestSource
) -> None:
    body: dict[str, Any] = {"resourceType": "OperationOutcome", "issue": {"diagnostics": "x"}}
    answer(fake, "Patient", body, status=400)
    with pytest.raises(FhirSourceError, match=r"GET Patient\?_summary=count: HTTP 400"):
        await source.count("Patient")
    body["issue"] = [{"details": "text, not an object"}]
    answer(fake, "Patient", body, status=400)
    with pytest.raises(FhirSourceError, match=r"HTTP 400 Bad Request \(http"):
        await source.count("Patient")


@pytest.mark.parametrize(
    ("manifest", "problem"),
    [
        ({"output": {"url": "x"}}, "not a Bulk Data manifest"),
        ({"output": [{"type": "Patient", "url": {"href": "x"}}]}, "malformed manifest output"),
        ({"output": [{"type": "Patient", "url": "x", "count": "2"}]}, "count is not a number"),
        ({"output": [], "error": "none"}, "manifest error is not an array"),
        ({"output": [], "requiresAccessToken": "yes"}, "requiresAccessToken is not a boolean"),
    ],
)
async def test_malformed_export_manifest(
    fake: FakeServer, source: FhirRestSource, manifest: dict[str, Any], problem: str
) -> None:
    async def kickoff(request: web.Request) -> web.Response:
        return web.Response(status=202, headers={"Content-Location": f"{fake.base}/status/1"})

    fake.routes["$export"] = kickoff
    answer(fake, "status/1", manifest)
    with pytest.raises(FhirSourceError, match=problem):
        await collect(source.export())


async def test_export_error_file_with_malformed_issues(
    fake: FakeServer, source: FhirRestSource
) -> None:
    async def kickoff(request: web.Request) -> web.Response:
        return web.Response(status=202, headers={"Content-Location": f"{fake.base}/status/1"})

    fake.routes["$export"] = kickoff
    answer(
        fake,
        "status/1",
        {"output": [], "error": [{"type": "OperationOutcome", "url": f"{fake.base}/err"}]},
    )
    answer(fake, "err", orjson.dumps({"resourceType": "OperationOutcome", "issue": "bad"}) + b"\n")
    with pytest.raises(FhirSourceError, match="malformed OperationOutcome: issue is a string"):
        await collect(source.export())
