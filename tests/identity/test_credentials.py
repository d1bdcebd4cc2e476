from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from connector.errors import AuthenticationError, ConfigurationError
from connector.identity.credentials import (
    DATA_PERMIT,
    MEMBERSHIP,
    issue_credential,
    read_credential_files,
    verify_credential,
)
from connector.identity.did import did_key_from_public_jwk, did_key_kid
from connector.identity.resolver import DidResolver
from connector.identity.signing import PrivateKey, decode_jws_unverified, generate_key
from tests.identity.conftest import DidServer, FakeClock, new_keys, sign_claims

HOLDER = "did:web:hospital-a.example"
PERMIT = {"datasets": ["ds-1", "ds-2"], "purpose": "research", "permitId": "HDAB-2026-17"}


@pytest.fixture
def authority() -> tuple[str, PrivateKey]:
    key = generate_key("Ed25519")
    return did_key_from_public_jwk(key.public_jwk()), key


def _issue(
    authority: tuple[str, PrivateKey],
    clock: FakeClock,
    type_: Any = MEMBERSHIP,
    claims: dict[str, Any] | None = None,
    days: int = 30,
    subject: str = HOLDER,
) -> str:
    did, key = authority
    now = clock.now()
    return issue_credential(
        did, key, subject, type_, claims or {}, now, now + timedelta(days=days), clock
    )


def test_encoding_follows_vc_jwt(authority: tuple[str, PrivateKey], clock: FakeClock) -> None:
    header, payload = decode_jws_unverified(_issue(authority, clock, DATA_PERMIT, PERMIT))
    assert header == {"alg": "EdDSA", "kid": did_key_kid(authority[0]), "typ": "JWT"}
    claims = json.loads(payload)
    now = int(clock.now().timestamp())
    assert claims["iss"] == authority[0]
    assert claims["sub"] == HOLDER
    assert claims["iat"] == claims["nbf"] == now
    assert claims["exp"] == now + 30 * 86400
    assert claims["jti"].startswith("urn:uuid:")
    assert claims["vc"]["@context"][0] == "https://www.w3.org/2018/credentials/v1"
    assert claims["vc"]["type"] == ["VerifiableCredential", "DataPermitCredential"]
    assert claims["vc"]["credentialSubject"] == {"id": HOLDER, **PERMIT}


async def test_data_permit_round_trip(
    authority: tuple[str, PrivateKey], clock: FakeClock, resolver: DidResolver
) -> None:
    jwt = _issue(authority, clock, DATA_PERMIT, PERMIT)
    credential = await verify_credential(jwt, resolver, [authority[0]], clock)
    assert credential.has_type(DATA_PERMIT)
    assert credential.issuer == authority[0]
    assert credential.subject == HOLDER
    assert credential.claims == PERMIT
    assert credential.datasets == ("ds-1", "ds-2")
    assert credential.expires == clock.now() + timedelta(days=30)


async def test_did_web_issuer_with_p256_key(
    clock: FakeClock, resolver: DidResolver, did_server: DidServer
) -> None:
    hdab_keys = new_keys("P-256")
    hdab = did_server.publish(hdab_keys)
    now = clock.now()
    jwt = issue_credential(
        hdab, hdab_keys.signing, HOLDER, DATA_PERMIT, PERMIT, now, now + timedelta(days=1), clock
    )
    assert decode_jws_unverified(jwt)[0]["alg"] == "ES256"
    credential = await verify_credential(jwt, resolver, [hdab], clock)
    assert credential.issuer == hdab


async def test_untrusted_issuer_is_refused(
    authority: tuple[str, PrivateKey], clock: FakeClock, resolver: DidResolver
) -> None:
    jwt = _issue(authority, clock)
    with pytest.raises(AuthenticationError, match=f"issuer {authority[0]} is not trusted"):
        await verify_credential(jwt, resolver, ["did:key:z6MkSomeoneElse"], clock)


async def test_forged_credential_is_refused(
    authority: tuple[str, PrivateKey], clock: FakeClock, resolver: DidResolver
) -> None:
    impostor = (authority[0], generate_key("Ed25519"))  # claims the authority's DID
    jwt = _issue(impostor, clock)
    with pytest.raises(AuthenticationError, match="credential: signature does not verify"):
        await verify_credential(jwt, resolver, [authority[0]], clock)


async def test_expired_and_not_yet_valid(
    authority: tuple[str, PrivateKey], clock: FakeClock, resolver: DidResolver
) -> None:
    jwt = _issue(authority, clock, days=1)
    clock.advance(86400 + 31)
    with pytest.raises(AuthenticationError, match="credential: expired at"):
        await verify_credential(jwt, resolver, [authority[0]], clock)
    did, key = authority
    later = clock.now() + timedelta(days=2)
    future = issue_credential(
        did, key, HOLDER, MEMBERSHIP, {}, later, later + timedelta(days=1), clock
    )
    with pytest.raises(AuthenticationError, match="not valid before"):
        await verify_credential(future, resolver, [did], clock)


async def test_kid_of_another_did_is_refused(
    authority: tuple[str, PrivateKey], clock: FakeClock, resolver: DidResolver
) -> None:
    other = generate_key("Ed25519")
    other_did = did_key_from_public_jwk(other.public_jwk())
    did, _ = authority
    now = clock.now()
    jwt = issue_credential(
        did,
        other,
        HOLDER,
        MEMBERSHIP,
        {},
        now,
        now + timedelta(days=1),
        clock,
        kid=did_key_kid(other_did),
    )
    with pytest.raises(AuthenticationError, match="does not belong to iss"):
        await verify_credential(jwt, resolver, [did], clock)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda c: c["vc"].update(type=["VerifiableCredential"]), "must name one of"),
        (lambda c: c["vc"].update(type=["MembershipCredential"]), "lacks VerifiableCredential"),
        (lambda c: c["vc"]["credentialSubject"].update(id="did:web:x"), "is not sub"),
        (lambda c: c["vc"]["credentialSubject"].pop("permitId"), "names permitId"),
        (lambda c: c["vc"]["credentialSubject"].update(datasets=[]), "names datasets"),
        (lambda c: c.pop("exp"), "no exp claim"),
        (lambda c: c.update(nbf="yesterday"), "not a NumericDate"),
    ],
)
async def test_malformed_credentials_are_refused(
    authority: tuple[str, PrivateKey],
    clock: FakeClock,
    resolver: DidResolver,
    mutate: Any,
    reason: str,
) -> None:
    did, key = authority
    claims = json.loads(decode_jws_unverified(_issue(authority, clock, DATA_PERMIT, PERMIT))[1])
    mutate(claims)
    jwt = sign_claims(claims, key, did_key_kid(did))
    with pytest.raises(AuthenticationError, match=reason):
        await verify_credential(jwt, resolver, [did], clock)


def test_issue_refuses_bad_input(authority: tuple[str, PrivateKey], clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="names datasets"):
        _issue(authority, clock, DATA_PERMIT, {"purpose": "p", "permitId": "x"})
    with pytest.raises(ValueError, match="unknown credential type"):
        _issue(authority, clock, "FooCredential")
    with pytest.raises(ValueError, match="not a DID"):
        _issue(authority, clock, subject="hospital-a")
    with pytest.raises(ValueError, match="valid_until must be after"):
        _issue(authority, clock, days=0)


def test_read_credential_files(
    tmp_path: Path, authority: tuple[str, PrivateKey], clock: FakeClock
) -> None:
    assert read_credential_files(tmp_path / "missing") == []
    first, second = _issue(authority, clock), _issue(authority, clock, DATA_PERMIT, PERMIT)
    (tmp_path / "b-permit.jwt").write_text(second + "\n")
    (tmp_path / "a-membership.jwt").write_text(first)
    (tmp_path / "notes.txt").write_text("ignored")
    assert read_credential_files(tmp_path) == [first, second]
    (tmp_path / "c.jwt").write_text("garbage")
    with pytest.raises(
        ConfigurationError, match=r"^PHEMS_CREDENTIALS_DIR: .*c.jwt is not a VC-JWT"
    ):
        read_credential_files(tmp_path)
    (tmp_path / "c.jwt").unlink()
    (tmp_path / "d.jwt").mkdir()
    with pytest.raises(ConfigurationError, match=r"^PHEMS_CREDENTIALS_DIR: cannot read .*d.jwt"):
        read_credential_files(tmp_path)
