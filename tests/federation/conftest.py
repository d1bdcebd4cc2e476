"""DID documents served over real HTTP on loopback and a resolver for them (from
tests/identity): the hospitals of these tests fetch each other's key agreement keys there."""

from tests.identity.conftest import clock, did_server, http, resolver

__all__ = ["clock", "did_server", "http", "resolver"]
