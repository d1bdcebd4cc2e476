"""Short-lived bearer tokens for the data plane, bound to one agreement and one transfer.

The provider signs them with its own signing key and is their only audience; the consumer
receives one in the ``DataAddress`` of a TransferStartMessage (``endpointProperties``
``authorization`` and ``authType`` = ``bearer``).

A transfer has one valid token at a time: the one in the DataAddress the provider sent last
(at start or resume) or issued last (at a refresh); the provider keeps it in its copy of the
DataAddress (``with_token``) and a pull must present it (``is_current``). So a refresh retires
the token it replaces, and a token from before a suspension does not work again after the
resume: suspending a transfer (for a token that leaked, say) ends the access its tokens gave.
The consumer's connector keeps the newest token in its own DataAddress likewise.
"""

from __future__ import annotations

import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from connector.dsp.messages import DataAddress, EndpointProperty
from connector.errors import AuthenticationError
from connector.identity.did import SIGNING_FRAGMENT
from connector.identity.keys import ConnectorKeys
from connector.identity.signing import sign_jws, verify_jws
from connector.policy import VerifiedCredential

TOKEN_LIFETIME = timedelta(minutes=15)
REFRESH_ENDPOINT = "refreshEndpoint"  # the DataAddress property: POST here for a fresh token


@dataclass(frozen=True)
class DataPlaneClaims:
    """``credentials``: the consumer's credentials as we verified them when the token was
    issued (the data plane evaluates the agreement's policy against them, while they are
    still valid, without asking for them again)."""

    consumer: str
    agreement_id: str
    transfer_id: str
    expires: datetime
    credentials: tuple[VerifiedCredential, ...] = ()


def _credential_claim(c: VerifiedCredential) -> dict[str, object]:
    return {
        "types": sorted(c.types),
        "issuer": c.issuer,
        "subject": dict(c.subject),
        "nbf": int(c.valid_from.timestamp()) if c.valid_from else None,
        "exp": int(c.valid_until.timestamp()) if c.valid_until else None,
    }


def _credential(claim: dict[str, object], tz: object) -> VerifiedCredential:
    nbf, exp, subject = claim.get("nbf"), claim.get("exp"), claim.get("subject")
    types = claim.get("types")
    if not isinstance(subject, dict) or not isinstance(types, list):
        raise TypeError("credential claim")
    return VerifiedCredential(
        types=frozenset(str(t) for t in types),
        issuer=str(claim["issuer"]),
        subject=subject,
        valid_from=datetime.fromtimestamp(int(str(nbf)), tz) if nbf is not None else None,  # type: ignore[arg-type]
        valid_until=datetime.fromtimestamp(int(str(exp)), tz) if exp is not None else None,  # type: ignore[arg-type]
    )


def issue_access_token(
    *,
    did: str,
    keys: ConnectorKeys,
    consumer: str,
    agreement_id: str,
    transfer_id: str,
    now: datetime,
    expires: datetime | None = None,
    credentials: tuple[VerifiedCredential, ...] = (),
) -> str:
    """A token valid for ``TOKEN_LIFETIME``, or until ``expires`` if that is sooner (the
    instant the agreement's policy would stop permitting the transfer)."""
    end = now + TOKEN_LIFETIME if expires is None else min(now + TOKEN_LIFETIME, expires)
    claims = {
        "iss": did,
        "aud": did,
        "sub": consumer,
        "agreement": agreement_id,
        "transfer": transfer_id,
        "iat": int(now.timestamp()),
        "exp": int(end.timestamp()),
        "jti": uuid.uuid4().hex,
        "credentials": [_credential_claim(c) for c in credentials],
    }
    return sign_jws(
        json.dumps(claims).encode(),
        keys.signing,
        f"{did}#{SIGNING_FRAGMENT}",
        extra_header={"typ": "at+jwt"},
    )


def seconds_left(expires: datetime, now: datetime) -> int:
    """A token's ``expiresIn``: seconds from ``now`` to ``expires``, rounded (``now`` is read
    a moment after the expiry was set), never negative."""
    return max(round((expires - now).total_seconds()), 0)


def verify_access_token(
    token: str, *, did: str, keys: ConnectorKeys, now: datetime
) -> DataPlaneClaims:
    header, payload = verify_jws(token, keys.signing.public_jwk())
    if header.get("typ") != "at+jwt":
        raise AuthenticationError("data plane token: not an access token")
    try:
        claims = json.loads(payload)
        expires = datetime.fromtimestamp(int(claims["exp"]), now.tzinfo)
        result = DataPlaneClaims(
            consumer=str(claims["sub"]),
            agreement_id=str(claims["agreement"]),
            transfer_id=str(claims["transfer"]),
            expires=expires,
            credentials=tuple(_credential(c, now.tzinfo) for c in claims.get("credentials", [])),
        )
    except (ValueError, KeyError, TypeError):
        raise AuthenticationError("data plane token: malformed claims") from None
    if claims.get("iss") != did or claims.get("aud") != did:
        raise AuthenticationError("data plane token: not issued by this connector")
    if expires <= now:
        raise AuthenticationError("data plane token: expired")
    return result


def with_token(address: DataAddress, token: str, expires_in: int | None) -> DataAddress:
    """``address`` carrying ``token`` (and its ``expiresIn``) in place of the one it had."""
    fresh = {"authorization": token}
    if expires_in is not None:
        fresh["expiresIn"] = str(expires_in)
    kept = [p for p in address.endpoint_properties or () if p.name not in fresh]
    props = kept + [EndpointProperty(name=k, value=v) for k, v in fresh.items()]
    return address.model_copy(update={"endpoint_properties": props})


def is_current(token: str, address: DataAddress | None) -> bool:
    """Whether ``token`` is the transfer's valid one (the latest issued)."""
    current = address.get_property("authorization") if address is not None else None
    return current is not None and hmac.compare_digest(token.encode(), current.encode())
