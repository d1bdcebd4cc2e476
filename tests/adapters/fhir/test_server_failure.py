"""The server dies mid-paging: a clear error, never a silently short result; a retry after the
restart succeeds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.fhir.retry import RetryPolicy
from adapters.fhir_rest import FhirRestSource
from connector.errors import FhirSourceError
from tests.adapters.fhir.data import DATA_DIR, collect, expected, ids, keys
from tests.adapters.fhir.sekmet import SekmetServer
from tests.conftest import free_port

FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.05, max_delay=0.2)


@pytest.fixture
def own_sekmet(sekmet_exe: Path, tmp_path: Path) -> Iterator[SekmetServer]:
    """A server of this test's own (it gets killed), holding the Organizations."""
    server = SekmetServer(sekmet_exe, tmp_path / "sekmet", free_port())
    try:
        server.start()
        server.load_ndjson(DATA_DIR, types=["Organization"])
        yield server
    finally:
        server.stop()


async def test_server_killed_mid_paging_raises_and_a_retry_after_restart_succeeds(
    own_sekmet: SekmetServer,
) -> None:
    source = FhirRestSource(own_sekmet.base_url, retry=FAST_RETRY)
    try:
        received: list[str] = []
        with pytest.raises(FhirSourceError) as caught:
            async for resource in source.search("Organization", {"_count": "7"}):
                received.append(resource["id"])
                if len(received) == 10:  # on the second page
                    own_sekmet.kill()
        message = str(caught.value)
        assert own_sekmet.base_url in message  # names the server ...
        assert "GET Organization?" in message and "_count=7" in message  # ... and the request
        assert "failed after 3 attempts" in message
        assert caught.value.status == 502
        assert 10 <= len(received) < len(expected()["Organization"])

        own_sekmet.start()
        got = await collect(source.search("Organization", {"_count": "7"}))
        assert keys(got) == ids(expected()["Organization"])
    finally:
        await source.aclose()


async def test_unreachable_server_names_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/fhir"
    source = FhirRestSource(url, retry=FAST_RETRY)
    try:
        with pytest.raises(FhirSourceError) as caught:
            await source.count("Patient")
    finally:
        await source.aclose()
    assert url in str(caught.value)
    assert "Patient?_summary=count" in str(caught.value)
