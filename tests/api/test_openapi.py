"""The OpenAPI description says what the API does: valid OpenAPI, one operation id each (client
generators need that), the management API's two ways to authenticate declared, errors as the
routes answer them (problem+json outside DSP, DSP error bodies on DSP routes; a request that
does not validate is a 400, never the 422 FastAPI assumes), and every management operation
described. Where a documented error can be provoked cheaply, the running app is asked."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from openapi_spec_validator import validate

from connector.api.app import create_app
from connector.settings import load_settings

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
DSP_ERROR_REF = {"$ref": "#/components/schemas/DspError"}


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    settings = load_settings(
        data_dir=tmp_path, public_url="http://127.0.0.1:9999", management_api_key="k"
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


def _responses(spec: dict[str, Any], path: str, method: str = "get") -> dict[str, Any]:
    return spec["paths"][path][method]["responses"]  # type: ignore[no-any-return]


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
    ]


def test_the_description_is_valid_openapi_with_unique_operation_ids(app: FastAPI) -> None:
    spec = app.openapi()  # a warning (a duplicate operation id, say) fails the test
    validate(spec)
    ids = [operation["operationId"] for _, _, operation in _operations(spec)]
    assert len(ids) == len(set(ids))
    assert {"ApiKey", "Bearer"} <= set(spec["components"]["securitySchemes"])


def test_errors_are_documented_as_the_routes_answer_them(app: FastAPI) -> None:
    spec = app.openapi()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, method, operation in _operations(spec):
        responses = operation["responses"]
        assert "422" not in responses, (method, path)
        errors = {code: r for code, r in responses.items() if code[0] in "45"}
        expected = DSP_ERROR_REF if path.startswith("/dsp/") else PROBLEM_REF
        for code, response in errors.items():
            media = "application/json" if path.startswith("/dsp/") else "application/problem+json"
            assert response["content"][media]["schema"] == expected, (method, path, code)
            assert response["description"], (method, path, code)
        if path.startswith("/dsp/"):
            assert {"400", "401"} <= set(errors), (method, path)
        if "{" in path:
            assert "404" in errors, (method, path)
        if path.startswith("/management"):
            assert operation.get("description"), f"{method} {path} is not described"
            assert operation["security"] == [{"ApiKey": []}, {"Bearer": []}], (method, path)
            assert "401" in errors, (method, path)


async def test_documented_errors_are_the_ones_answered(app: FastAPI) -> None:
    spec = app.openapi()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        # Every management operation, without credentials: the documented 401, problem+json.
        for path, method, operation in _operations(spec):
            if not path.startswith("/management"):
                continue
            url = re.sub(r"\{[^}]+\}", "x", path)
            r = await client.request(method, url, json={})
            assert r.status_code == 401, (method, path, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            assert r.headers["www-authenticate"] == 'Bearer realm="management"'
            assert "401" in operation["responses"]

        key = {"X-Api-Key": "k"}
        documented = spec["paths"]["/management/negotiations"]["post"]["responses"]
        r = await client.post("/management/negotiations", json={"offer": 1}, headers=key)
        assert r.status_code == 400 and "400" in documented, r.text
        assert r.headers["content-type"] == "application/problem+json"

        documented = spec["paths"]["/management/negotiations/{nid}"]["get"]["responses"]
        r = await client.get("/management/negotiations/nope", headers=key)
        assert r.status_code == 404 and "404" in documented, r.text

        # A method the route does not have: 405, naming those it has (RFC 9110).
        r = await client.request("DELETE", "/management/negotiations", headers=key)
        assert r.status_code == 405, r.text
        assert r.headers["allow"] == "GET, HEAD, POST"
        r = await client.request("PATCH", "/management/datasets/a/b/retire", headers=key)
        assert (r.status_code, r.headers["allow"]) == (405, "POST")
        assert r.headers["content-type"] == "application/problem+json"

        # The other scheme: the key as a bearer token.
        r = await client.get("/management/negotiations", headers={"Authorization": "Bearer k"})
        assert r.status_code == 200, r.text

        # A DSP route: the documented 401, as a DSP error body.
        documented = spec["paths"]["/dsp/2025-1/negotiations/request"]["post"]["responses"]
        r = await client.post("/dsp/2025-1/negotiations/request", json={})
        assert r.status_code == 401 and "401" in documented, r.text
        assert r.json()["@type"] == "ContractNegotiationError"
        assert r.headers["www-authenticate"] == 'Bearer realm="dsp"'
        r = await client.post(
            "/dsp/2025-1/negotiations/request", json={}, headers={"Authorization": "Bearer x.y.z"}
        )
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == 'Bearer realm="dsp", error="invalid_token"'

        # The data plane: a pull without its token.
        r = await client.get("/dataplane/transfers/x")
        assert r.status_code == 401 and "401" in _responses(spec, "/dataplane/transfers/{tid}")
        assert r.headers["www-authenticate"] == 'Bearer realm="dataplane"'
