"""A FHIR server whose ``$export`` manifest names a path instead of a resource type (issue 18,
finding 9): nothing is written outside the export directory. The server is a small aiohttp
app on loopback playing a hostile Bulk Data server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from adapters.fhir.retry import RetryPolicy
from adapters.fhir_rest import FhirRestSource
from connector.errors import FhirSourceError
from tests.conftest import free_port


@pytest.fixture
async def hostile() -> AsyncIterator[tuple[str, list[str]]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}/fhir"
    types: list[str] = []

    async def kickoff(request: web.Request) -> web.Response:
        return web.Response(status=202, headers={"Content-Location": f"{base}/status"})

    async def status(request: web.Request) -> web.Response:
        output = [{"type": t, "url": f"{base}/file"} for t in types]
        manifest = {"transactionTime": "2026-01-01T00:00:00Z", "request": "x", "output": output}
        return web.json_response(manifest)

    async def file(request: web.Request) -> web.Response:
        return web.Response(text='{"resourceType": "Patient", "id": "p1"}\n')

    async def delete(request: web.Request) -> web.Response:
        return web.Response(status=202)

    app = web.Application()
    app.router.add_get("/fhir/$export", kickoff)
    app.router.add_get("/fhir/status", status)
    app.router.add_delete("/fhir/status", delete)
    app.router.add_get("/fhir/file", file)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield base, types
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    "bad_type", ["../../escaped", "Patient/../../escaped", "/tmp/x", "..", "Patient\x00", ""]
)
async def test_a_path_in_the_manifest_writes_nothing_outside(
    hostile: tuple[str, list[str]], tmp_path: Path, bad_type: str
) -> None:
    base, types = hostile
    types[:] = ["Patient", bad_type]
    directory = tmp_path / "a" / "b" / "export"
    source = FhirRestSource(base, retry=RetryPolicy(attempts=1))
    try:
        with pytest.raises(FhirSourceError, match="no resource type"):
            await source.export_to_directory(directory)
    finally:
        await source.aclose()
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert written == []


async def test_a_good_manifest_still_writes(hostile: tuple[str, list[str]], tmp_path: Path) -> None:
    base, types = hostile
    types[:] = ["Patient", "Patient"]
    source = FhirRestSource(base, retry=RetryPolicy(attempts=1))
    try:
        result = await source.export_to_directory(tmp_path / "export")
    finally:
        await source.aclose()
    assert [p.name for p in result.files] == ["Patient.000.ndjson", "Patient.001.ndjson"]
