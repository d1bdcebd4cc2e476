from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
from starlette.requests import Request

from connector.api.app import create_app
from connector.api.ui_session import COOKIE, check_csrf, csrf_token, new_session, session_nonce
from connector.settings import load_settings


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


def test_a_session_lives_an_hour() -> None:
    from connector.api.ui_session import MAX_AGE_SECONDS, _mac

    assert MAX_AGE_SECONDS <= 3600
    nonce = f"{int(time.time()) - MAX_AGE_SECONDS - 1}-abc"
    stale = f"{nonce}.{_mac('key-1', 'session', nonce)}"
    assert session_nonce(_request(stale), "key-1") is None


async def test_sign_out_ends_the_session_for_every_copy_of_the_cookie(tmp_path: Path) -> None:
    """Issue 18: the UI had no sign-out. The app in-process; the store is real (SQLite)."""
    settings = load_settings(data_dir=tmp_path, public_url="http://127.0.0.1:9999")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        key = app.state.services.management_api_key
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as browser:
            html = {"Accept": "text/html"}
            r = await browser.post("/catalog/signin", data={"api_key": key, "next": "/catalog"})
            assert r.status_code == 303
            copied = browser.cookies[COOKIE]
            page = (await browser.get("/catalog", headers=html)).text
            assert 'action="/catalog/signout"' in page
            csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
            assert csrf is not None
            r = await browser.post("/catalog/signout", data={"csrf": csrf.group(1)})
            assert r.status_code == 303 and COOKIE not in browser.cookies
            assert "/catalog/signout" not in (await browser.get("/catalog", headers=html)).text
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as thief:
            thief.cookies.set(COOKIE, copied, path="/catalog")
            r = await thief.get("/catalog/negotiations/urn:uuid:x")
            assert r.status_code == 303 and r.headers["location"].startswith("/catalog/signin")
