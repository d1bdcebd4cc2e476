"""Verifiable credentials as VC-JWT (W3C VC Data Model 1.1, section 6.3.1 "JWT encoding").

A credential is a JWS (EdDSA or ES256) with ``iss`` = issuer DID, ``sub`` = holder DID,
``iat``, ``nbf`` (validFrom), ``exp`` (validUntil), ``jti`` (the credential id) and ``vc`` =
{``@context``, ``type``: [``VerifiableCredential``, ``MembershipCredential`` |
``DataPermitCredential``], ``credentialSubject``: {``id``: holder DID, ...claims}}.
A data permit's subject names ``datasets`` (dataset ids), ``purpose`` and ``permitId`` (the
Health Data Access Body's reference). A credential is trusted when its issuer is in the trust
list; untrusted issuers are refused before anything about them is fetched.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from connector.errors import AuthenticationError, ConfigurationError
from connector.identity.did import SIGNING_FRAGMENT, did_key_kid
from connector.identity.jwt import parse_jwt, required_date, verify_jwt_signature
from connector.identity.resolver import DidResolver
from connector.identity.signing import PrivateKey, sign_jws
from connector.ports import Clock

CredentialType = Literal["MembershipCredential", "DataPermitCredential"]
MEMBERSHIP: CredentialType = "MembershipCredential"
DATA_PERMIT: CredentialType = "DataPermitCredential"
CREDENTIAL_TYPES: frozenset[str] = frozenset({MEMBERSHIP, DATA_PERMIT})
VC_CONTEXT = "https://www.w3.org/2018/credentials/v1"
PHEMS_CONTEXT = "https://w3id.org/phems/ns/credentials/v1"
DEFAULT_LEEWAY = timedelta(seconds=30)


@dataclass(frozen=True)
class VerifiedCredential:
    id: str
    types: tuple[str, ...]
    issuer: str
    subject: str
    claims: dict[str, Any] = field(hash=False)
    expires: datetime

    def has_type(self, credential_type: str) -> bool:
        return credential_type in self.types

    @property
    def datasets(self) -> tuple[str, ...]:
        """Dataset ids a data permit covers (empty for other credentials)."""
        return tuple(self.claims.get("datasets", ())) if self.has_type(DATA_PERMIT) else ()


def default_kid(issuer_did: str) -> str:
    """The issuer's verification method: the did:key itself, or ``#key-1`` of a did:web."""
    if issuer_did.startswith("did:key:"):
        return did_key_kid(issuer_did)
    return f"{issuer_did}#{SIGNING_FRAGMENT}"


def _check_subject(credential_type: str, subject: Mapping[str, Any], what: str) -> None:
    if credential_type != DATA_PERMIT:
        return
    datasets = subject.get("datasets")
    if (
        not isinstance(datasets, list)
        or not datasets
        or not all(isinstance(d, str) and d for d in datasets)
    ):
        raise ValueError(f"{what}: a data permit names datasets (a non-empty list of ids)")
    for name in ("purpose", "permitId"):
        if not isinstance(subject.get(name), str) or not subject[name]:
            raise ValueError(f"{what}: a data permit names {name}")


def issue_credential(
    issuer_did: str,
    issuer_key: PrivateKey,
    subject_did: str,
    type: CredentialType,
    claims: Mapping[str, Any],
    valid_from: datetime,
    valid_until: datetime,
    clock: Clock,
    *,
    kid: str | None = None,
) -> str:
    """A signed VC-JWT; ``ValueError`` for a type, subject or validity that does not fit."""
    if type not in CREDENTIAL_TYPES:
        raise ValueError(f"unknown credential type {type!r}")
    if not subject_did.startswith("did:"):
        raise ValueError(f"subject is not a DID: {subject_did!r}")
    if valid_until <= valid_from:
        raise ValueError("valid_until must be after valid_from")
    if "id" in claims:
        raise ValueError("claims must not contain 'id' (the subject DID is the id)")
    _check_subject(type, claims, "credential")
    jti = f"urn:uuid:{uuid.uuid4()}"
    payload = {
        "iss": issuer_did,
        "sub": subject_did,
        "iat": int(clock.now().timestamp()),
        "nbf": int(valid_from.timestamp()),
        "exp": int(valid_until.timestamp()),
        "jti": jti,
        "vc": {
            "@context": [VC_CONTEXT, PHEMS_CONTEXT],
            "type": ["VerifiableCredential", type],
            "credentialSubject": {"id": subject_did, **claims},
        },
    }
    body = json.dumps(payload, separators=(",", ":")).encode()
    return sign_jws(body, issuer_key, kid or default_kid(issuer_did), extra_header={"typ": "JWT"})


async def verify_credential(
    jwt: str,
    resolver: DidResolver,
    trusted_issuers: Collection[str],
    clock: Clock,
    *,
    leeway: timedelta = DEFAULT_LEEWAY,
) -> VerifiedCredential:
    """Check a VC-JWT; ``AuthenticationError`` with the reason if it is not one to rely on."""
    what = "credential"
    parsed = parse_jwt(jwt, what)
    claims = parsed.claims
    if parsed.iss not in trusted_issuers:
        raise AuthenticationError(f"{what}: issuer {parsed.iss} is not trusted")
    now = clock.now()
    expires = required_date(claims, "exp", what)
    if expires <= now - leeway:
        raise AuthenticationError(f"{what}: expired at {expires.isoformat()}")
    not_before = required_date(claims, "nbf", what)
    if not_before > now + leeway:
        raise AuthenticationError(f"{what}: not valid before {not_before.isoformat()}")
    subject = claims.get("sub")
    vc = claims.get("vc")
    if not isinstance(subject, str) or not isinstance(vc, dict):
        raise AuthenticationError(f"{what}: needs sub and vc claims")
    types = vc.get("type")
    if not isinstance(types, list) or "VerifiableCredential" not in types:
        raise AuthenticationError(f"{what}: vc.type lacks VerifiableCredential")
    known = [t for t in types if t in CREDENTIAL_TYPES]
    if len(known) != 1:
        raise AuthenticationError(f"{what}: vc.type must name one of {sorted(CREDENTIAL_TYPES)}")
    credential_subject = vc.get("credentialSubject")
    if not isinstance(credential_subject, dict) or credential_subject.get("id") != subject:
        raise AuthenticationError(f"{what}: credentialSubject.id is not sub {subject}")
    try:
        _check_subject(known[0], credential_subject, what)
    except ValueError as exc:
        raise AuthenticationError(str(exc)) from None
    await verify_jwt_signature(parsed, resolver, "assertionMethod", what)
    return VerifiedCredential(
        id=str(claims.get("jti", "")),
        types=tuple(str(t) for t in types),
        issuer=parsed.iss,
        subject=subject,
        claims={k: v for k, v in credential_subject.items() if k != "id"},
        expires=expires,
    )


def read_credential_files(directory: Path) -> list[str]:
    """The VC-JWTs (``*.jwt``, one per file, sorted by name) this connector presents.

    A missing directory means no credentials; an unreadable one or a file that is not a
    JWT is a ``ConfigurationError`` naming ``PHEMS_CREDENTIALS_DIR``.
    """
    if not directory.exists():
        return []
    found: list[str] = []
    try:
        files = sorted(directory.glob("*.jwt"))
        for file in files:
            text = file.read_text(encoding="utf-8").strip()
            if text.count(".") != 2:
                raise ConfigurationError(f"PHEMS_CREDENTIALS_DIR: {file} is not a VC-JWT")
            found.append(text)
    except OSError as exc:
        reason = exc.strerror.lower() if exc.strerror else str(exc)
        raise ConfigurationError(
            f"PHEMS_CREDENTIALS_DIR: cannot read {exc.filename or directory}: {reason}"
        ) from None
    return found
