"""Self-issued tokens: who is calling (DESIGN.md §3 "Who is calling").

Every DSP request carries ``Authorization: Bearer <JWT>`` signed with the caller's did:web key
(header ``kid`` = ``<caller DID>#key-1``, ``typ`` = ``JWT``): ``iss`` = ``sub`` = caller DID,
``aud`` = callee DID, ``iat``, ``exp`` at most 5 minutes ahead, a unique ``jti`` (a replay is
refused) and ``credentials``: a list of VC-JWTs.

Credentials inside a valid token: by default a credential that fails (untrusted issuer, bad
signature, expired, or issued to someone else) is *dropped*, its reason kept in
``VerifiedCaller.refused_credentials``, and the caller is still authenticated: policies that
need a credential then fail with a clear ``ForbiddenError`` naming it, while calls that need
none (e.g. the catalog) keep working. ``strict=True`` refuses the whole token instead.

Check order: shape, ``iss``/``sub``/``kid`` and claims first (no network), then the caller's
key (did:web fetch) and signature, then the replay guard (only a genuine token can spend a
``jti``), then the credentials.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson

from connector.errors import AuthenticationError, UpstreamError
from connector.identity.credentials import DEFAULT_LEEWAY, VerifiedCredential, verify_credential
from connector.identity.did import SIGNING_FRAGMENT
from connector.identity.jwt import parse_jwt, required_date, verify_jwt_signature
from connector.identity.keys import ConnectorKeys
from connector.identity.resolver import DidResolver
from connector.identity.signing import sign_jws
from connector.ports import Clock, ReplayGuard

MAX_LIFETIME = timedelta(minutes=5)
MAX_CACHED_CREDENTIALS = 4096


@dataclass(frozen=True)
class VerifiedCaller:
    did: str
    credentials: tuple[VerifiedCredential, ...]
    jti: str
    exp: datetime
    refused_credentials: tuple[str, ...] = ()


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header, or ``AuthenticationError``."""
    if not authorization:
        raise AuthenticationError("no Authorization header (a self-issued Bearer token)")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("Authorization header is not 'Bearer <token>'")
    return token.strip()


class TokenIssuer:
    """Makes this connector's tokens for calls to other connectors."""

    def __init__(
        self,
        did: str,
        keys: ConnectorKeys,
        lifetime_seconds: int,
        credentials: Sequence[str],
        clock: Clock,
    ) -> None:
        if not 0 < lifetime_seconds <= MAX_LIFETIME.total_seconds():
            raise ValueError("token lifetime must be between 1 and 300 seconds")
        self.did = did
        self._keys = keys
        self._lifetime = lifetime_seconds
        self.credentials: tuple[str, ...] = tuple(credentials)
        self._clock = clock

    def issue(self, audience_did: str) -> str:
        now = int(self._clock.now().timestamp())
        claims = {
            "iss": self.did,
            "sub": self.did,
            "aud": audience_did,
            "iat": now,
            "exp": now + self._lifetime,
            "jti": str(uuid.uuid4()),
            "credentials": list(self.credentials),
        }
        return sign_jws(
            orjson.dumps(claims),
            self._keys.signing,
            f"{self.did}#{SIGNING_FRAGMENT}",
            extra_header={"typ": "JWT"},
        )


class TokenVerifier:
    """Checks callers' tokens; every refusal is an ``AuthenticationError`` with the reason."""

    def __init__(
        self,
        resolver: DidResolver,
        replay_guard: ReplayGuard,
        trusted_issuers: Collection[str],
        own_did: str,
        clock: Clock,
        *,
        strict: bool = False,
        leeway: timedelta = DEFAULT_LEEWAY,
        credential_cache_seconds: float = 300.0,
    ) -> None:
        self._resolver = resolver
        self._replay = replay_guard
        self._trusted = frozenset(trusted_issuers)
        self._own_did = own_did
        self._clock = clock
        self._strict = strict
        self._leeway = leeway
        # A caller sends the same VC-JWTs with every token: a verified one is kept (as long as
        # a resolved DID document is, and never past its own exp) instead of checking its
        # signature on every request.
        self._credential_ttl = timedelta(seconds=credential_cache_seconds)
        self._credentials: dict[str, tuple[datetime, VerifiedCredential]] = {}

    async def verify(self, token: str) -> VerifiedCaller:
        jwt = parse_jwt(token)
        claims = jwt.claims
        if jwt.header.get("typ", "JWT") != "JWT":
            raise AuthenticationError(f"token: typ {jwt.header['typ']!r} is not JWT")
        if claims.get("sub") != jwt.iss:
            raise AuthenticationError(f"token: iss {jwt.iss!r} != sub {claims.get('sub')!r}")
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self._own_did not in audiences:
            raise AuthenticationError(f"token: aud {audience!r} is not this connector")
        now = self._clock.now()
        expires = required_date(claims, "exp")
        if expires <= now - self._leeway:
            raise AuthenticationError(f"token: expired at {expires.isoformat()}")
        if expires > now + MAX_LIFETIME + self._leeway:
            raise AuthenticationError("token: exp is more than 5 minutes ahead")
        if required_date(claims, "iat") > now + self._leeway:
            raise AuthenticationError("token: iat is in the future")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > 200:
            raise AuthenticationError("token: needs a jti (a string of at most 200 characters)")
        raw_credentials = claims.get("credentials", [])
        if not isinstance(raw_credentials, list) or not all(
            isinstance(c, str) for c in raw_credentials
        ):
            raise AuthenticationError("token: credentials must be a list of VC-JWT strings")
        try:
            await verify_jwt_signature(jwt, self._resolver, "authentication")
        except UpstreamError as exc:
            # The caller's identity cannot be checked: its problem (401), not our failure.
            raise AuthenticationError(f"token: cannot check the signature: {exc.detail}") from None
        # Remembered as long as the token could still be accepted (exp plus the clock leeway).
        if not await self._replay.remember(jti, expires + self._leeway):
            raise AuthenticationError(f"token: jti {jti!r} was already used (replay)")
        accepted: list[VerifiedCredential] = []
        refused: list[str] = []
        for index, raw in enumerate(raw_credentials):
            try:
                credential = await self._credential(raw)
                if credential.subject != jwt.iss:
                    raise AuthenticationError(
                        f"credential: issued to {credential.subject}, not to the caller"
                    )
            except (AuthenticationError, UpstreamError) as exc:
                if self._strict:
                    raise type(exc)(f"token: credential {index}: {exc.detail}") from None
                refused.append(f"credential {index}: {exc.detail}")
                continue
            accepted.append(credential)
        return VerifiedCaller(
            did=jwt.iss,
            credentials=tuple(accepted),
            jti=jti,
            exp=expires,
            refused_credentials=tuple(refused),
        )

    async def _credential(self, raw: str) -> VerifiedCredential:
        now = self._clock.now()
        cached = self._credentials.get(raw)
        if cached is not None and now < cached[0] and cached[1].expires > now - self._leeway:
            return cached[1]
        credential = await verify_credential(
            raw, self._resolver, self._trusted, self._clock, leeway=self._leeway
        )
        if self._credential_ttl > timedelta(0):
            if len(self._credentials) >= MAX_CACHED_CREDENTIALS:
                self._credentials.clear()
            self._credentials[raw] = (now + self._credential_ttl, credential)
        return credential
