"""Operator sign-in for the catalog UI: a session cookie and a CSRF token.

The operator signs in with the management API key. The cookie (HttpOnly, SameSite=Strict)
holds a random nonce with its issue time and an HMAC of it under a key derived from the
management API key, so changing the API key signs everyone out and a restart does not. A
session ends after ``MAX_AGE_SECONDS`` (an hour), or when the operator signs out: the nonce
is then recorded (``connector.db.signouts``, shared by replicas) until it would have expired,
so a copy of the cookie stops working too. Every state-changing form carries the CSRF token,
a second HMAC of the same nonce.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import UTC, datetime

from fastapi import Request, Response

from connector.db.signouts import SignOuts

COOKIE = "phems_session"
MAX_AGE_SECONDS = 3600
# The catalog pages use no script and only inline styles: forbid everything else, so markup
# injected through harvested metadata could not run even if it got past escaping.
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def _mac(api_key: str, purpose: str, nonce: str) -> str:
    key = hashlib.sha256(b"phems-ui-session:" + api_key.encode()).digest()
    return hmac.new(key, f"{purpose}:{nonce}".encode(), hashlib.sha256).hexdigest()


def new_session(api_key: str) -> str:
    # The nonce carries its issue time, so a session ends after MAX_AGE_SECONDS even if the
    # browser keeps the cookie.
    nonce = f"{int(time.time())}-{secrets.token_urlsafe(18)}"
    return f"{nonce}.{_mac(api_key, 'session', nonce)}"


def session_nonce(request: Request, api_key: str) -> str | None:
    """The nonce of a valid, unexpired session cookie, or None when not signed in."""
    value = request.cookies.get(COOKIE, "")
    nonce, _, mac = value.partition(".")
    issued, _, _ = nonce.partition("-")
    if not nonce or not issued.isdigit() or time.time() - int(issued) > MAX_AGE_SECONDS:
        return None
    if hmac.compare_digest(mac.encode(), _mac(api_key, "session", nonce).encode()):
        return nonce
    return None


async def signed_in(request: Request, api_key: str, signouts: SignOuts) -> str | None:
    """The nonce of a valid session that was not signed out, or None."""
    nonce = session_nonce(request, api_key)
    if nonce is None or await signouts.signed_out(nonce):
        return None
    return nonce


def expires_at(nonce: str) -> datetime:
    """When the session of ``nonce`` (a valid one) ends by itself."""
    issued = int(nonce.partition("-")[0])
    return datetime.fromtimestamp(issued + MAX_AGE_SECONDS, UTC)


def clear_session_cookie(response: Response, *, secure: bool) -> None:
    response.delete_cookie(COOKIE, path="/catalog", secure=secure, httponly=True, samesite="strict")


def csrf_token(nonce: str, api_key: str) -> str:
    return _mac(api_key, "csrf", nonce)


def check_csrf(nonce: str, api_key: str, supplied: str) -> bool:
    return hmac.compare_digest(supplied.encode(), csrf_token(nonce, api_key).encode())


def set_session_cookie(response: Response, value: str, *, secure: bool) -> None:
    response.set_cookie(
        COOKIE,
        value,
        max_age=MAX_AGE_SECONDS,
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/catalog",
    )
