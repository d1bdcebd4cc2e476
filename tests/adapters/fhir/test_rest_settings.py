"""Page size and timeouts come from the settings (``PHEMS_FHIR_*``) through the factory, and
bound what a slow or silent server can cost."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
from aiohttp import web

from adapters.fhir.http import Timeouts
from adapters.fhir.retry import RetryPolicy
from adapters.fhir_factory import build_fhir_source
from adapters.fhir_rest import DEFAULT_PAGE_SIZE, FhirRestSource
from connector.errors import FhirSourceError
from connector.ports import FhirSource
from connector.settings import Settings, load_settings
from tests.adapters.fhir.data import collect
from tests.adapters.fhir.fake import FakeServer, bundle, json_response, patients

Build = Callable[..., FhirSource]


@pytest.fixture
async def from_settings() -> AsyncIterator[Build]:
    """``build_fhir_source`` over settings with the given overrides; closes what it built."""
    built: list[FhirSource] = []

    def build(**overrides: Any) -> FhirSource:
        source = build_fhir_source(load_settings(fhir_source="rest", **overrides))
        built.append(source)
        return source

    try:
        yield build
    finally:
        for source in built:
            await source.aclose()


def test_defaults_are_documented_and_sensible() -> None:
    fields = Settings.model_fields
    assert fields["fhir_page_size"].default == DEFAULT_PAGE_SIZE == 1000
    timeouts = [
        fields[f"fhir_{name}_timeout_seconds"].default for name in ("connect", "read", "request")
    ]
    assert timeouts == [Timeouts().connect, Timeouts().read, Timeouts().request]
    assert timeouts[0] < timeouts[1] < timeouts[2] <= 300
    for name in ("page_size", *(f"{t}_timeout_seconds" for t in ("connect", "read", "request"))):
        assert fields[f"fhir_{name}"].description


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("fhir_page_size", 0),
        ("fhir_page_size", 20000),
        ("fhir_read_timeout_seconds", 0),
        ("fhir_request_timeout_seconds", -1),
    ],
)
def test_unusable_values_are_refused(setting: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"PHEMS_{setting.upper()}"):
        load_settings(
            fhir_source="rest", fhir_base_url="http://127.0.0.1:1/fhir", **{setting: value}
        )


async def test_every_search_asks_for_the_configured_page_size(
    fake: FakeServer, from_settings: Build
) -> None:
    async def patient(request: web.Request) -> web.Response:
        return json_response(bundle(patients("a", "b"), total=2))

    fake.routes["Patient"] = patient
    default = from_settings(fhir_base_url=fake.base)
    assert [r["id"] for r in await collect(default.search("Patient"))] == ["a", "b"]
    small = from_settings(fhir_base_url=fake.base, fhir_page_size=7)
    await collect(small.search("Patient"))
    await collect(small.search("Patient", {"_count": "3"}))  # a search's own _count wins
    assert [q["_count"] for q in fake.queries["Patient"]] == ["1000", "7", "3"]


async def test_a_server_that_never_answers_fails_within_the_request_timeout(
    fake: FakeServer, from_settings: Build
) -> None:
    fake.routes["Patient"] = fake.never_answer
    source = from_settings(
        fhir_base_url=fake.base,
        fhir_read_timeout_seconds=0.3,
        fhir_request_timeout_seconds=1.0,
    )
    started = time.monotonic()
    with pytest.raises(FhirSourceError) as caught:
        await collect(source.search("Patient"))
    elapsed = time.monotonic() - started
    message = str(caught.value)
    assert "GET Patient?_count=1000 failed after" in message
    assert "the request timeout (1 s, PHEMS_FHIR_REQUEST_TIMEOUT_SECONDS): timed out" in message
    assert caught.value.status == 502
    # Several attempts (each cut by the read timeout), all of them inside the 1 s budget: the
    # defaults (5 attempts x 60 s read) took 307 s.
    assert len(fake.hits["Patient"]) >= 2
    assert elapsed < 1.0 + 2.0  # slack for a busy machine; the point is 1 s, not 307 s


async def test_a_slow_answer_is_cut_by_the_request_timeout_even_while_bytes_flow(
    fake: FakeServer,
) -> None:
    """A server dribbling its answer never trips the read timeout; the total still holds."""

    async def dribble(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/fhir+json"})
        await response.prepare(request)
        for _ in range(100):
            await response.write(b" ")
            await fake.pause(0.05)
        await response.write(bundle(patients("a")))
        return response

    fake.routes["Patient"] = dribble
    source = FhirRestSource(
        fake.base,
        timeouts=Timeouts(connect=1.0, read=0.5, request=0.6),
        retry=RetryPolicy(attempts=1),
    )
    try:
        with pytest.raises(FhirSourceError, match="failed after 1 attempts: timed out"):
            await source.count("Patient")
    finally:
        await source.aclose()


async def test_the_deadline_counts_back_off_and_retry_after(fake: FakeServer) -> None:
    """A 503 asking for a 5 s pause is not waited for when only 1 s is left."""

    async def busy(request: web.Request) -> web.Response:
        body = orjson.dumps({"resourceType": "OperationOutcome", "issue": []})
        return json_response(body, 503, **{"Retry-After": "5"})

    fake.routes["Patient"] = busy
    source = FhirRestSource(fake.base, timeouts=Timeouts(request=1.0))
    started = time.monotonic()
    try:
        with pytest.raises(FhirSourceError, match="failed after 1 attempts in .* HTTP 503"):
            await source.count("Patient")
    finally:
        await source.aclose()
    assert time.monotonic() - started < 1.0
    assert len(fake.hits["Patient"]) == 1


def test_timeouts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Timeouts(read=0)
