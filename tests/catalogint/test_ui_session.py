from __future__ import annotations

from starlette.requests import Request

from connector.api.ui_session import COOKIE, check_csrf, csrf_token, new_session, session_nonce


def _request(cookie: str) -> Request:
    return Request({"type": "http", "headers": [(b"cookie", f"{COOKIE}={cookie}".encode())]})


def test_session_and_csrf_are_bound_to_the_api_key() -> None:
    value = new_session("key-1")
    nonce = session_nonce(_request(value), "key-1")
    assert nonce is not None
    assert session_nonce(_request(value), "key-2") is None  # key rotated: signed out
    forged = value[:-1] + ("1" if value.endswith("0") else "0")
    assert session_nonce(_request(forged), "key-1") is None  # forged
    token = csrf_token(nonce, "key-1")
    assert check_csrf(nonce, "key-1", token)
    assert not check_csrf(nonce, "key-1", "")
    assert not check_csrf("other", "key-1", token)
