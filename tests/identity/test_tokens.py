"""Self-issued tokens (DESIGN.md §3): every refusal carries its reason.

The caller's did:web document is served by a real HTTP server on loopback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from connector.errors import AuthenticationError
from connector.identity.credentials import DATA_PERMIT, MEMBERSHIP, issue_credential
from connector.identity.did import did_key_from_public_jwk
from connector.identity.jwt import parse_jwt
from connector.identity.keys import ConnectorKeys
from connector.identity.resolver import DidResolver
from connector.identity.signing import (
    PrivateKey,
    b64url_encode,
    decode_jws_unverified,
    generate_key,
)
from connector.identity.tokens import TokenIssuer, TokenVerifier, bearer_token
from tests.identity.conftest import DidServer, FakeClock, MemoryReplayGuard, new_keys, sign_claims

CALLEE = "did:web:provider.example"


@dataclass
class World:
    caller: str
    keys: ConnectorKeys
    authority: str
    authority_key: PrivateKey
    clock: FakeClock
    resolver: DidResolver
    guard: MemoryReplayGuard

    def credential(self, type_: Any = MEMBERSHIP, subject: str = "", **kw: Any) -> str:
        now = self.clock.now()
        return issue_credential(
            kw.pop("issuer", self.authority),
            kw.pop("key", self.authority_key),
            subject or self.caller,
            type_,
            kw,
            now - timedelta(days=1),
            now + timedelta(days=30),
            self.clock,
        )

    def issuer(
        self, credentials: list[str] | None = None, keys: ConnectorKeys | None = None
    ) -> TokenIssuer:
        return TokenIssuer(self.caller, keys or self.keys, 120, credentials or [], self.clock)

    def verifier(self, *, strict: bool = False) -> TokenVerifier:
        return TokenVerifier(
            self.resolver, self.guard, [self.authority], CALLEE, self.clock, strict=strict
        )

    def claims(self, **changes: Any) -> dict[str, Any]:
        now = int(self.clock.now().timestamp())
        base = {
            "iss": self.caller,
            "sub": self.caller,
            "aud": CALLEE,
            "iat": now,
            "exp": now + 60,
            "jti": "jti-1",
            "credentials": [],
        }
        return {**base, **changes}

    def sign(self, claims: dict[str, Any], kid: str = "", key: PrivateKey | None = None) -> str:
        return sign_claims(claims, key or self.keys.signing, kid or f"{self.caller}#key-1")


@pytest.fixture
def world(did_server: DidServer, clock: FakeClock, resolver: DidResolver) -> World:
    keys = new_keys()
    authority_key = generate_key("Ed25519")
    return World(
        caller=did_server.publish(keys),
        keys=keys,
        authority=did_key_from_public_jwk(authority_key.public_jwk()),
        authority_key=authority_key,
        clock=clock,
        resolver=resolver,
        guard=MemoryReplayGuard(),
    )


async def test_round_trip_with_credentials(world: World) -> None:
    membership = world.credential()
    permit = world.credential(DATA_PERMIT, datasets=["ds-1"], purpose="research", permitId="P-1")
    token = world.issuer([membership, permit]).issue(CALLEE)
    header, payload = decode_jws_unverified(token)
    assert header == {"alg": "EdDSA", "kid": f"{world.caller}#key-1", "typ": "JWT"}
    claims = json.loads(payload)
    assert claims["iss"] == claims["sub"] == world.caller
    assert claims["aud"] == CALLEE
    assert claims["exp"] - claims["iat"] == 120
    caller = await world.verifier().verify(token)
    assert caller.did == world.caller
    assert caller.jti == claims["jti"]
    assert caller.exp == world.clock.now() + timedelta(seconds=120)
    assert [c.types[1] for c in caller.credentials] == [MEMBERSHIP, DATA_PERMIT]
    assert caller.refused_credentials == ()
    # Remembered for as long as the token could be accepted: exp plus the clock leeway.
    assert world.guard.seen == {claims["jti"]: caller.exp + timedelta(seconds=30)}


async def test_cached_credential_still_expires(world: World) -> None:
    now = world.clock.now()
    short = issue_credential(
        world.authority,
        world.authority_key,
        world.caller,
        MEMBERSHIP,
        {},
        now - timedelta(days=1),
        now + timedelta(seconds=60),
        world.clock,
    )
    issuer, verifier = world.issuer([short]), world.verifier()
    # Verified once, then kept for the next tokens (5 minutes); never past its own exp.
    for _ in range(2):
        assert [c.types[1] for c in (await verifier.verify(issuer.issue(CALLEE))).credentials] == [
            MEMBERSHIP
        ]
    world.clock.advance(240)
    caller = await verifier.verify(issuer.issue(CALLEE))
    assert caller.credentials == ()
    assert "expired" in caller.refused_credentials[0]


async def test_p256_caller(did_server: DidServer, world: World) -> None:
    keys = new_keys("P-256")
    world.caller, world.keys = did_server.publish(keys), keys
    token = world.issuer().issue(CALLEE)
    assert decode_jws_unverified(token)[0]["alg"] == "ES256"
    assert (await world.verifier().verify(token)).did == world.caller


async def test_each_token_has_a_fresh_jti(world: World) -> None:
    issuer = world.issuer()
    assert issuer.issue(CALLEE) != issuer.issue(CALLEE)
    jtis = {json.loads(decode_jws_unverified(issuer.issue(CALLEE))[1])["jti"] for _ in range(5)}
    assert len(jtis) == 5


async def test_forged_signature_is_refused(world: World) -> None:
    token = world.issuer(keys=new_keys()).issue(CALLEE)  # right DID and kid, wrong key
    with pytest.raises(AuthenticationError, match=r"token: signature does not verify .*#key-1\)"):
        await world.verifier().verify(token)


async def test_tampered_claims_are_refused(world: World) -> None:
    header, _, signature = world.issuer().issue(CALLEE).split(".")
    other = world.sign(world.claims(jti="something-else")).split(".")[1]
    with pytest.raises(AuthenticationError, match="signature does not verify"):
        await world.verifier().verify(f"{header}.{other}.{signature}")


async def test_forged_token_does_not_spend_the_jti(world: World) -> None:
    forged = world.sign(world.claims(jti="shared"), key=generate_key("Ed25519"))
    with pytest.raises(AuthenticationError, match="signature does not verify"):
        await world.verifier().verify(forged)
    assert (await world.verifier().verify(world.sign(world.claims(jti="shared")))).jti == "shared"


async def test_wrong_audience_is_refused(world: World) -> None:
    token = world.issuer().issue("did:web:someone-else.example")
    with pytest.raises(AuthenticationError, match="aud 'did:web:someone-else.example' is not"):
        await world.verifier().verify(token)


async def test_audience_list_containing_us_is_accepted(world: World) -> None:
    token = world.sign(world.claims(aud=["did:web:x.example", CALLEE]))
    assert (await world.verifier().verify(token)).did == world.caller


async def test_expired_token_is_refused(world: World) -> None:
    token = world.issuer().issue(CALLEE)
    world.clock.advance(120 + 31)  # lifetime plus the 30 s leeway
    with pytest.raises(AuthenticationError, match="token: expired at"):
        await world.verifier().verify(token)


async def test_exp_more_than_five_minutes_ahead_is_refused(world: World) -> None:
    now = int(world.clock.now().timestamp())
    with pytest.raises(AuthenticationError, match="more than 5 minutes ahead"):
        await world.verifier().verify(world.sign(world.claims(exp=now + 600)))
    assert (await world.verifier().verify(world.sign(world.claims(exp=now + 300)))).jti


async def test_reused_jti_is_refused(world: World) -> None:
    token = world.issuer().issue(CALLEE)
    verifier = world.verifier()
    await verifier.verify(token)
    with pytest.raises(AuthenticationError, match=r"jti '.*' was already used \(replay\)"):
        await verifier.verify(token)


async def test_iss_not_sub_is_refused(world: World) -> None:
    token = world.sign(world.claims(sub="did:web:victim.example"))
    with pytest.raises(AuthenticationError, match="iss '.*' != sub 'did:web:victim.example'"):
        await world.verifier().verify(token)


async def test_kid_of_another_did_is_refused(world: World, did_server: DidServer) -> None:
    other_keys = new_keys()
    other = did_server.publish(other_keys)
    token = world.sign(world.claims(), kid=f"{other}#key-1", key=other_keys.signing)
    with pytest.raises(AuthenticationError, match="key id .* does not belong to iss"):
        await world.verifier().verify(token)


async def test_unknown_key_id_is_refused(world: World) -> None:
    token = world.sign(world.claims(), kid=f"{world.caller}#key-9")
    with pytest.raises(AuthenticationError, match=r"unknown key id '.*#key-9'"):
        await world.verifier().verify(token)


async def test_key_agreement_key_id_is_refused(world: World) -> None:
    token = world.sign(world.claims(), kid=f"{world.caller}#key-agreement-1")
    with pytest.raises(AuthenticationError, match="not listed under authentication"):
        await world.verifier().verify(token)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"jti": ""}, "needs a jti"),
        ({"exp": None}, "no exp claim"),
        ({"iat": None}, "no iat claim"),
        ({"credentials": "x"}, "credentials must be a list"),
        ({"iss": None}, "no iss claim"),
        ({"x": [[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]}, "nested more than 16 levels"),
    ],
)
async def test_malformed_claims_are_refused(
    world: World, changes: dict[str, Any], reason: str
) -> None:
    claims = {k: v for k, v in world.claims(**changes).items() if v is not None}
    with pytest.raises(AuthenticationError, match=reason):
        await world.verifier().verify(world.sign(claims))


async def test_iat_in_the_future_is_refused(world: World) -> None:
    now = int(world.clock.now().timestamp())
    with pytest.raises(AuthenticationError, match="iat is in the future"):
        await world.verifier().verify(world.sign(world.claims(iat=now + 120, exp=now + 200)))


async def test_wrong_typ_is_refused(world: World) -> None:
    token = sign_claims(world.claims(), world.keys.signing, f"{world.caller}#key-1", typ="vc+jwt")
    with pytest.raises(AuthenticationError, match="typ 'vc\\+jwt' is not JWT"):
        await world.verifier().verify(token)


async def test_untrusted_credential_is_dropped_with_reason(world: World) -> None:
    rogue = generate_key("Ed25519")
    rogue_did = did_key_from_public_jwk(rogue.public_jwk())
    good = world.credential()
    bad = world.credential(issuer=rogue_did, key=rogue)
    caller = await world.verifier().verify(world.issuer([bad, good]).issue(CALLEE))
    assert [c.issuer for c in caller.credentials] == [world.authority]
    assert caller.refused_credentials == (
        f"credential 0: credential: issuer {rogue_did} is not trusted",
    )


async def test_untrusted_credential_refuses_token_in_strict_mode(world: World) -> None:
    rogue = generate_key("Ed25519")
    rogue_did = did_key_from_public_jwk(rogue.public_jwk())
    token = world.issuer([world.credential(issuer=rogue_did, key=rogue)]).issue(CALLEE)
    with pytest.raises(
        AuthenticationError, match=f"credential 0: .*issuer {rogue_did} is not trusted"
    ):
        await world.verifier(strict=True).verify(token)


async def test_credential_of_someone_else_is_not_the_callers(world: World) -> None:
    stolen = world.credential(subject="did:web:other-hospital.example")
    caller = await world.verifier().verify(world.issuer([stolen]).issue(CALLEE))
    assert caller.credentials == ()
    assert caller.refused_credentials == (
        "credential 0: credential: issued to did:web:other-hospital.example, not to the caller",
    )
    with pytest.raises(AuthenticationError, match="not to the caller"):
        await world.verifier(strict=True).verify(world.issuer([stolen]).issue(CALLEE))


async def test_unreachable_caller_is_refused_not_our_failure(world: World) -> None:
    """Anyone can name a did:web that cannot be fetched: a 401 for the caller, not a 502 (and
    an ERROR in our log) for every such token (issue 18, finding 7)."""
    token = world.sign(
        world.claims(iss=f"{world.caller}-gone", sub=f"{world.caller}-gone"),
        kid=f"{world.caller}-gone#key-1",
    )
    with pytest.raises(AuthenticationError, match="cannot check the signature: .*HTTP 404"):
        await world.verifier().verify(token)


def test_lifetime_above_five_minutes_is_refused(world: World) -> None:
    with pytest.raises(ValueError, match="between 1 and 300"):
        TokenIssuer(world.caller, world.keys, 301, [], world.clock)


def test_bearer_token_header() -> None:
    assert bearer_token("Bearer abc.def.ghi") == "abc.def.ghi"
    assert bearer_token("bearer  abc ") == "abc"
    for bad, reason in [
        (None, "no Authorization header"),
        ("", "no Authorization"),
        ("Basic dXNlcg==", "not 'Bearer"),
        ("Bearer ", "not 'Bearer"),
    ]:
        with pytest.raises(AuthenticationError, match=reason):
            bearer_token(bad)


def test_a_payload_nested_beyond_the_parser_is_not_json() -> None:
    """orjson stops at 1024 levels; the stdlib's json would have raised RecursionError (a 500
    on every DSP endpoint, before any signature is checked)."""
    header = b64url_encode(b'{"alg":"EdDSA","kid":"did:web:x#key-1"}')
    with pytest.raises(AuthenticationError, match="payload is not JSON"):
        parse_jwt(f"{header}.{b64url_encode(b'[' * 100_000)}.c2ln")
