from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from connector.errors import AuthenticationError, PolicyViolationError
from connector.policy import Decision, Scope, VerifiedCredential, evaluate
from tests.policy.helpers import AUTHORITY, CALLER, c, ctx, policy

NBF = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
EXP = int(datetime(2027, 1, 1, tzinfo=UTC).timestamp())


def claims(**vc: Any) -> dict[str, Any]:
    body = {
        "type": ["VerifiableCredential", "MembershipCredential"],
        "credentialSubject": {"id": CALLER, "country": "DE"},
    }
    body.update(vc)
    return {"iss": AUTHORITY, "sub": CALLER, "nbf": NBF, "exp": EXP, "jti": "j", "vc": body}


def test_from_jwt_claims() -> None:
    cred = VerifiedCredential.from_jwt_claims(claims())
    assert cred.types == frozenset({"VerifiableCredential", "MembershipCredential"})
    assert (cred.issuer, cred.subject["id"], cred.subject["country"]) == (AUTHORITY, CALLER, "DE")
    assert cred.valid_from == datetime(2026, 1, 1, tzinfo=UTC)
    assert cred.valid_until == datetime(2027, 1, 1, tzinfo=UTC)
    member = policy(c("phems:membership", "eq", True), c("spatial", "eq", "DE"))
    assert evaluate(member, ctx(credentials=(cred,)), Scope.NEGOTIATION)
    expired = ctx(credentials=(cred,), now=datetime(2027, 1, 1, tzinfo=UTC))
    assert not evaluate(member, expired, Scope.NEGOTIATION)


def test_from_jwt_claims_takes_holder_from_sub() -> None:
    body = claims(credentialSubject={"country": "AT"})
    assert VerifiedCredential.from_jwt_claims(body).subject["id"] == CALLER


@pytest.mark.parametrize(
    "body",
    [
        {"iss": AUTHORITY},
        claims(credentialSubject=[{"id": CALLER}]),
        claims(type=[1]),
        {**claims(), "sub": "did:web:other.example"},
        {**claims(), "exp": "tomorrow"},
        {**claims(), "iss": None},
    ],
)
def test_malformed_credential_claims_are_refused(body: dict[str, Any]) -> None:
    with pytest.raises(AuthenticationError):
        VerifiedCredential.from_jwt_claims(body)


def test_decision() -> None:
    ok = Decision(True)
    assert ok and ok.reason == ""
    ok.raise_if_denied()
    denied = Decision(False, ["a (x)", "b (y)"])
    assert not denied and denied.reason == "a (x); b (y)"
    with pytest.raises(PolicyViolationError, match=r"a \(x\); b \(y\)") as info:
        denied.raise_if_denied()
    assert info.value.status == 403
