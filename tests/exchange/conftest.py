"""Fixtures shared with tests/identity: DID documents served over real HTTP on loopback, and a
resolver for them (``test_callbacks`` reads callers' declared service hosts from them)."""

from tests.identity.conftest import clock, did_server, http, resolver

__all__ = ["clock", "did_server", "http", "resolver"]
