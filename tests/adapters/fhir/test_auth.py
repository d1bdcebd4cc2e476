"""Authentication to sekmet (basic, static bearer, SMART Backend Services RS384 and ES384) and the
clear errors bad settings give, through the factory the composition root calls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from adapters.fhir.auth import BasicAuth, BearerAuth, SmartBackendAuth, load_smart_key
from adapters.fhir_factory import build_fhir_source
from adapters.fhir_rest import FhirRestSource
from adapters.ndjson_source import NdjsonFileSource
from connector.errors import ConfigurationError, FhirSourceError
from connector.ports import FhirSource
from connector.settings import Settings
from tests.adapters.fhir.conftest import (
    BASIC_PASSWORD,
    BASIC_USER,
    ES_CLIENT,
    RS_CLIENT,
    SmartKeys,
)
from tests.adapters.fhir.data import DATA_DIR, expected
from tests.adapters.fhir.sekmet import SekmetServer

PATIENTS = len(expected()["Patient"])


def rest_settings(sekmet: SekmetServer, **fields: Any) -> Settings:
    return Settings(fhir_source="rest", fhir_base_url=sekmet.base_url, **fields)


async def count_patients(source: FhirSource) -> int:
    try:
        return await source.count("Patient")
    finally:
        await source.aclose()


async def test_basic_auth(sekmet: SekmetServer) -> None:
    settings = rest_settings(
        sekmet, fhir_auth="basic", fhir_username=BASIC_USER, fhir_password=BASIC_PASSWORD
    )
    assert await count_patients(build_fhir_source(settings)) == PATIENTS


async def test_static_bearer(sekmet: SekmetServer) -> None:
    from tests.adapters.fhir.conftest import TOKEN

    settings = rest_settings(sekmet, fhir_auth="bearer", fhir_token=TOKEN)
    assert await count_patients(build_fhir_source(settings)) == PATIENTS


async def test_smart_rs384_pem_with_discovered_token_endpoint(
    sekmet: SekmetServer, smart_keys: SmartKeys
) -> None:
    settings = rest_settings(
        sekmet,
        fhir_auth="smart",
        fhir_smart_client_id=RS_CLIENT,
        fhir_smart_key_file=smart_keys.rsa_pem,
    )
    source = build_fhir_source(settings)
    assert isinstance(source, FhirRestSource)
    try:
        assert await source.count("Patient") == PATIENTS
        # the token is cached and reused across requests, including paging and $export
        assert len([r async for r in source.search("Encounter", {"_count": "200"})]) == 1215
        exported = [r async for r in source.export(types=["Patient"])]
        assert len(exported) == PATIENTS
    finally:
        await source.aclose()


async def test_smart_es384_jwk_with_explicit_token_endpoint(
    sekmet: SekmetServer, smart_keys: SmartKeys
) -> None:
    key = load_smart_key(smart_keys.es_jwk)
    assert (key.alg, key.kid) == ("ES384", "es384-test")
    token_url = sekmet.base_url.removesuffix("/fhir") + "/auth/token"
    auth = SmartBackendAuth(
        client_id=ES_CLIENT, key=key, scope="system/*.read", token_url=token_url
    )
    assert await count_patients(FhirRestSource(sekmet.base_url, auth=auth)) == PATIENTS


async def test_smart_with_an_unregistered_key_names_the_problem(
    sekmet: SekmetServer, smart_keys: SmartKeys
) -> None:
    auth = SmartBackendAuth(
        client_id=RS_CLIENT, key=load_smart_key(smart_keys.stranger_pem), scope="system/*.read"
    )
    with pytest.raises(FhirSourceError) as caught:
        await count_patients(FhirRestSource(sekmet.base_url, auth=auth))
    message = str(caught.value)
    assert "auth/token" in message and "invalid_client" in message
    assert "verification failed" in message


async def test_smart_with_an_unknown_client_id(sekmet: SekmetServer, smart_keys: SmartKeys) -> None:
    auth = SmartBackendAuth(
        client_id="nobody", key=load_smart_key(smart_keys.rsa_pem), scope="system/*.read"
    )
    with pytest.raises(FhirSourceError, match="Unknown client_id 'nobody'"):
        await count_patients(FhirRestSource(sekmet.base_url, auth=auth))


@pytest.mark.parametrize(
    "auth",
    [None, BearerAuth("wrong-token"), BasicAuth(BASIC_USER, "wrong-password")],
    ids=["none", "bad-bearer", "bad-basic"],
)
async def test_rejected_credentials_give_a_clear_error(
    sekmet: SekmetServer, auth: BearerAuth | BasicAuth | None
) -> None:
    with pytest.raises(FhirSourceError) as caught:
        await count_patients(FhirRestSource(sekmet.base_url, auth=auth))
    message = str(caught.value)
    assert "HTTP 401" in message and "PHEMS_FHIR_AUTH" in message
    assert sekmet.base_url in message


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"fhir_auth": "bearer"}, "PHEMS_FHIR_TOKEN"),
        ({"fhir_auth": "basic", "fhir_username": "u"}, "PHEMS_FHIR_PASSWORD"),
        ({"fhir_auth": "smart", "fhir_smart_key_file": "k.pem"}, "PHEMS_FHIR_SMART_CLIENT_ID"),
        ({"fhir_auth": "smart", "fhir_smart_client_id": "c"}, "PHEMS_FHIR_SMART_KEY_FILE"),
        (
            {"fhir_auth": "smart", "fhir_smart_client_id": "c", "fhir_smart_key_file": "/nope"},
            "PHEMS_FHIR_SMART_KEY_FILE",
        ),
        ({"fhir_ca_bundle": "/no/such/ca.pem"}, "PHEMS_FHIR_CA_BUNDLE"),
    ],
)
def test_bad_auth_settings_name_the_setting(fields: dict[str, Any], named: str) -> None:
    settings = Settings(fhir_source="rest", fhir_base_url="https://fhir.example.org/r4", **fields)
    with pytest.raises(ConfigurationError, match=named):
        build_fhir_source(settings)


@pytest.mark.parametrize("content", [b"not a key", b'{"kty": "oct", "k": "c2VjcmV0"}'])
def test_unusable_smart_key_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "key"
    path.write_bytes(content)
    settings = Settings(
        fhir_source="rest",
        fhir_base_url="https://fhir.example.org/r4",
        fhir_auth="smart",
        fhir_smart_client_id="c",
        fhir_smart_key_file=path,
    )
    with pytest.raises(ConfigurationError, match="PHEMS_FHIR_SMART_KEY_FILE"):
        build_fhir_source(settings)


def test_files_setting_builds_the_file_source() -> None:
    source = build_fhir_source(Settings(fhir_files_dir=DATA_DIR))
    assert isinstance(source, NdjsonFileSource)
    assert source.directory == DATA_DIR
