"""Failure modes a well-behaved sekmet never shows, played by a small fake FHIR server on
loopback: throttling with Retry-After, flapping 5xx, a broken download, a lying total, a next
link to another host, an export that reports errors."""

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

FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)


@pytest.fixture
async def source(fake: FakeServer) -> AsyncIterator[FhirRestSource]:
    impl = FhirRestSource(fake.base, retry=FAST)
    try:
        yield impl
    finally:
        await impl.aclose()


async def test_429_waits_as_long_as_retry_after_says(
    fake: FakeServer, source: FhirRestSource
) -> None:
    async def patient(request: web.Request) -> web.Response:
        if len(fake.hits["Patient"]) == 1:
            return json_response(b"{}", 429, **{"Retry-After": "1"})
        return json_response(bundle(patients("a"), total=1))

    fake.routes["Patient"] = patient
    assert [r["id"] for r in await collect(source.search("Patient"))] == ["a"]
    first, second = fake.hits["Patient"]
    assert second - first >= 0.95  # the 0.01 s back-off would have been far shorter


async def test_flapping_5xx_is_retried(fake: FakeServer, source: FhirRestSource) -> None:
    async def patient(request: web.Request) -> web.Response:
        if len(fake.hits["Patient"]) < 3:
            return json_response(b"{}", 503)
        return json_response(bundle([], total=4))

    fake.routes["Patient"] = patient
    assert await source.count("Patient") == 4
    assert len(fake.hits["Patient"]) == 3


async def test_persistent_500_reports_the_servers_diagnostics(
    fake: FakeServer, source: FhirRestSource
) -> None:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "exception", "diagnostics": "database is locked"}],
    }

    async def patient(request: web.Request) -> web.Response:
        return json_response(orjson.dumps(outcome), 500)

    fake.routes["Patient"] = patient
    with pytest.raises(
        FhirSourceError, match="failed after 3 attempts: HTTP 500.*database is locked"
    ):
        await source.count("Patient")


async def test_a_page_failing_mid_search_never_ends_quietly(
    fake: FakeServer, source: FhirRestSource
) -> None:
    async def patient(request: web.Request) -> web.Response:
        if request.query.get("page") == "2":
            return json_response(b"{}", 502)
        return json_response(
            bundle(patients("a", "b"), total=4, next_url=f"{fake.base}/Patient?page=2")
        )

    fake.routes["Patient"] = patient
    received = []
    with pytest.raises(FhirSourceError, match=r"GET Patient\?page=2 failed after 3 attempts"):
        async for resource in source.search("Patient"):
            received.append(resource["id"])
    assert received == ["a", "b"]


async def test_total_that_paging_does_not_deliver_raises(
    fake: FakeServer, source: FhirRestSource
) -> None:
    async def patient(request: web.Request) -> web.Response:
        return json_response(bundle(patients("a", "b"), total=3))

    fake.routes["Patient"] = patient
    with pytest.raises(FhirSourceError, match="reported 3 matches but paging returned 2"):
        await collect(source.search("Patient"))


async def test_duplicate_across_pages_raises(fake: FakeServer, source: FhirRestSource) -> None:
    async def patient(request: web.Request) -> web.Response:
        nxt = "" if request.query.get("page") else f"{fake.base}/Patient?page=2"
        return json_response(bundle(patients("a"), next_url=nxt))

    fake.routes["Patient"] = patient
    with pytest.raises(FhirSourceError, match="Patient/a returned twice"):
        await collect(source.search("Patient"))


async def test_next_link_to_another_host_is_refused(
    fake: FakeServer, source: FhirRestSource
) -> None:
    async def patient(request: web.Request) -> web.Response:
        return json_response(bundle(patients("a"), next_url="http://evil.example/fhir/Patient?p=2"))

    fake.routes["Patient"] = patient
    with pytest.raises(FhirSourceError, match="leaves the server's origin"):
        await collect(source.search("Patient"))


def ndjson(*ids: str) -> bytes:
    return b"".join(orjson.dumps({"resourceType": "Patient", "id": i}) + b"\n" for i in ids)


def export_routes(fake: FakeServer, manifest: dict[str, Any]) -> None:
    async def kickoff(request: web.Request) -> web.Response:
        assert request.headers["Prefer"] == "respond-async"
        assert request.headers["Accept"] == "application/fhir+json"
        return web.Response(status=202, headers={"Content-Location": f"{fake.base}/status/1"})

    async def status(request: web.Request) -> web.Response:
        if request.method == "DELETE":
            return web.Response(status=202)
        if len(fake.hits["status/1"]) < 3:
            return web.Response(status=202, headers={"Retry-After": "0", "X-Progress": "busy"})
        return json_response(orjson.dumps(manifest))

    fake.routes["$export"] = kickoff
    fake.routes["status/1"] = status


async def test_broken_download_is_resumed_without_duplicates(
    fake: FakeServer, source: FhirRestSource
) -> None:
    full = ndjson(*(f"p{i}" for i in range(200)))
    export_routes(
        fake, {"output": [{"type": "Patient", "url": f"{fake.base}/files/p", "count": 200}]}
    )

    async def file(request: web.Request) -> web.StreamResponse:
        if len(fake.hits["files/p"]) > 1:
            return web.Response(body=full, content_type="application/fhir+ndjson")
        response = web.StreamResponse(headers={"Content-Length": str(len(full))})
        await response.prepare(request)
        await response.write(full[: len(full) // 2])  # then the connection drops
        assert request.transport is not None
        request.transport.close()
        return response

    fake.routes["files/p"] = file
    got = [r["id"] async for r in source.export()]
    assert got == [f"p{i}" for i in range(200)]
    assert len(fake.hits["files/p"]) == 2
    assert len(fake.hits["status/1"]) == 4  # three polls, then the DELETE


async def test_export_with_error_file_is_not_complete(
    fake: FakeServer, source: FhirRestSource
) -> None:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "processing",
                "diagnostics": "Observation table unavailable",
            }
        ],
    }
    export_routes(
        fake,
        {
            "output": [{"type": "Patient", "url": f"{fake.base}/files/p"}],
            "error": [{"type": "OperationOutcome", "url": f"{fake.base}/files/err"}],
        },
    )

    async def err(request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(outcome) + b"\n")

    fake.routes["files/err"] = err
    with pytest.raises(FhirSourceError, match="incomplete: Observation table unavailable"):
        await collect(source.export())


async def test_export_file_shorter_than_the_manifest_count(
    fake: FakeServer, source: FhirRestSource
) -> None:
    export_routes(
        fake, {"output": [{"type": "Patient", "url": f"{fake.base}/files/p", "count": 3}]}
    )

    async def file(request: web.Request) -> web.Response:
        return web.Response(body=ndjson("a", "b"))

    fake.routes["files/p"] = file
    with pytest.raises(FhirSourceError, match="manifest says 3 resources, got 2"):
        await collect(source.export())


async def test_smart_token_is_cached_and_renewed_after_a_401(fake: FakeServer) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from adapters.fhir.auth import SmartBackendAuth, SmartKey, jwk_thumbprint

    key = ec.generate_private_key(ec.SECP384R1())
    tokens = iter(["first", "second"])

    async def token(request: web.Request) -> web.Response:
        form = await request.post()
        assert form["grant_type"] == "client_credentials"
        assert (
            form["client_assertion_type"]
            == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        )
        return web.json_response({"access_token": next(tokens), "expires_in": 300})

    async def patient(request: web.Request) -> web.Response:
        # the server revokes "first" after two uses
        if request.headers["Authorization"] == "Bearer first" and len(fake.hits["Patient"]) > 2:
            return json_response(b"{}", 401)
        return json_response(bundle([], total=1))

    fake.routes["token"] = token
    fake.routes["Patient"] = patient
    smart = SmartBackendAuth(
        client_id="c",
        key=SmartKey(key, "ES384", jwk_thumbprint(key)),
        scope="system/*.read",
        token_url=f"{fake.base}/token",
    )
    source = FhirRestSource(fake.base, auth=smart, retry=FAST)
    try:
        for _ in range(4):
            assert await source.count("Patient") == 1
    finally:
        await source.aclose()
    assert len(fake.hits["token"]) == 2  # cached for two calls, renewed once after the 401
    assert len(fake.hits["Patient"]) == 5
