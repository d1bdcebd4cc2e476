"""Callback address validation and joining (HTTPS bindings: trailing ``/`` either way)."""

from __future__ import annotations

import pytest

from connector.dsp.urls import callback_address_problem, join_url


@pytest.mark.parametrize(
    "address",
    [
        "https://consumer.example/callback",
        "https://consumer.example/callback/",
        "http://127.0.0.1:8123/dsp/2025-1",
        "https://[::1]:8443/cb",
        "https://consumer.example",
    ],
)
def test_usable_callback_addresses(address: str) -> None:
    assert callback_address_problem(address) is None


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("ftp://x.example/cb", "scheme"),
        ("https://", "no host"),
        ("https://x.example:0x50/cb", "not a valid URL"),
        ("https://x.example/cb#frag", "query or fragment"),
        ("https://x .example/cb", "whitespace"),
        ("http://user@consumer.example/cb", "user name or password"),
        ("https://user:secret@consumer.example/cb", "user name or password"),
        ("https://@consumer.example/cb", "user name or password"),
        ("https://consumer.example\\@evil.example/cb", "'\\'"),
        ("https://consumer..example/cb", "not a valid host name"),
        ("https://" + "a" * 70 + ".example/cb", "not a valid host name"),
        ("https://consumer.example:0/cb", "port 0"),
        ("https://consumer.example/cb\x7f", "printable ASCII"),
        ("https://kinderklinik.\u00e9xample/cb", "printable ASCII"),
    ],
)
def test_unusable_callback_addresses(address: str, reason: str) -> None:
    problem = callback_address_problem(address)
    assert problem is not None and reason in problem


@pytest.mark.parametrize("base", ["https://c.example/cb", "https://c.example/cb/"])
def test_join_url_tolerates_trailing_slash(base: str) -> None:
    url = join_url(base, "negotiations", "urn:uuid:1", "agreement")
    assert url == "https://c.example/cb/negotiations/urn:uuid:1/agreement"


def test_join_url_encodes_each_segment() -> None:
    url = join_url("https://p.example/dsp/2025-1", "transfers", "https://x/y z", "start")
    assert url == "https://p.example/dsp/2025-1/transfers/https:%2F%2Fx%2Fy%20z/start"
    assert join_url("https://p.example/base/") == "https://p.example/base"
