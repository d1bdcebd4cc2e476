"""did:web resolution over real HTTP on loopback (a separate server process)."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest

from connector.errors import AuthenticationError, UpstreamError
from connector.identity.did import did_key_from_public_jwk
from connector.identity.resolver import DidResolver
from connector.identity.signing import generate_key
from tests.conftest import free_port
from tests.identity.conftest import DidServer, FakeClock, new_keys


async def test_resolves_root_did_over_http(resolver: DidResolver, did_server: DidServer) -> None:
    keys = new_keys()
    did = did_server.publish(keys, at_root=True)
    assert did == did_server.host_did
    document = await resolver.resolve(did)
    assert document["id"] == did
    assert await resolver.resolve_key(f"{did}#key-1", "authentication") == (
        keys.signing.public_jwk()
    )
    assert await resolver.resolve_key(f"{did}#key-agreement-1", "keyAgreement") == (
        keys.key_agreement.public_jwk()
    )


async def test_resolves_path_did(resolver: DidResolver, did_server: DidServer) -> None:
    keys = new_keys("P-256")
    did = did_server.publish(keys)
    assert did.count(":") == 3
    jwk = await resolver.resolve_key(f"{did}#key-1")
    assert jwk["crv"] == "P-256"


async def test_unknown_key_id_is_refused(resolver: DidResolver, did_server: DidServer) -> None:
    did = did_server.publish(new_keys())
    with pytest.raises(AuthenticationError, match=r"unknown key id '.*#key-7'"):
        await resolver.resolve_key(f"{did}#key-7")


async def test_key_agreement_key_is_not_a_signing_key(
    resolver: DidResolver, did_server: DidServer
) -> None:
    did = did_server.publish(new_keys())
    with pytest.raises(AuthenticationError, match="not listed under assertionMethod"):
        await resolver.resolve_key(f"{did}#key-agreement-1", "assertionMethod")


async def test_plain_http_refused_unless_host_is_listed(
    http: httpx.AsyncClient, clock: FakeClock, did_server: DidServer
) -> None:
    did = did_server.publish(new_keys())
    segment = did.rsplit(":", 1)[1]
    strict = DidResolver(http, clock, insecure_hosts=["127.0.0.1:1"])
    with pytest.raises(UpstreamError) as info:
        await strict.resolve(did)
    assert info.value.url == f"https://{did_server.netloc}/{segment}/did.json"
    assert did_server.requests_for(f"/{segment}/did.json") == 0  # never asked over plain http


async def test_cache_respects_ttl_with_injected_clock(
    http: httpx.AsyncClient, clock: FakeClock, did_server: DidServer
) -> None:
    resolver = DidResolver(http, clock, insecure_hosts=[did_server.netloc], cache_seconds=60)
    did = did_server.publish(new_keys())
    path = f"/{did.rsplit(':', 1)[1]}/did.json"
    first = await resolver.resolve_key(f"{did}#key-1")
    # The peer rotates its key: within the TTL we keep the cached document...
    rotated = new_keys()
    did_server.write(
        did_server.root / path.strip("/"),
        {
            **json.loads((did_server.root / path.strip("/")).read_text()),
            "verificationMethod": [
                {
                    "id": f"{did}#key-1",
                    "type": "JsonWebKey2020",
                    "controller": did,
                    "publicKeyJwk": rotated.signing.public_jwk(),
                }
            ],
        },
    )
    clock.advance(59)
    assert await resolver.resolve_key(f"{did}#key-1") == first
    assert did_server.requests_for(path) == 1
    # ...and after it we fetch again and see the new key.
    clock.advance(2)
    assert await resolver.resolve_key(f"{did}#key-1") == rotated.signing.public_jwk()
    assert did_server.requests_for(path) == 2


async def test_cache_disabled(
    http: httpx.AsyncClient, clock: FakeClock, did_server: DidServer
) -> None:
    resolver = DidResolver(http, clock, insecure_hosts=[did_server.netloc], cache_seconds=0)
    did = did_server.publish(new_keys())
    path = f"/{did.rsplit(':', 1)[1]}/did.json"
    await resolver.resolve(did)
    await resolver.resolve(did)
    assert did_server.requests_for(path) == 2


async def test_missing_document_is_upstream_error_with_url(
    resolver: DidResolver, did_server: DidServer
) -> None:
    did = f"{did_server.host_did}:nobody-here"
    with pytest.raises(UpstreamError, match="HTTP 404") as info:
        await resolver.resolve(did)
    assert info.value.url == f"http://{did_server.netloc}/nobody-here/did.json"
    assert info.value.status == 502


async def test_unreachable_host_is_upstream_error(
    http: httpx.AsyncClient, clock: FakeClock
) -> None:
    netloc = f"127.0.0.1:{free_port()}"
    resolver = DidResolver(http, clock, insecure_hosts=[netloc])
    did = "did:web:" + netloc.replace(":", "%3A")
    with pytest.raises(UpstreamError, match="cannot fetch DID document") as info:
        await resolver.resolve(did)
    assert info.value.url == f"http://{netloc}/.well-known/did.json"


async def test_document_for_another_did_is_refused(
    resolver: DidResolver, did_server: DidServer
) -> None:
    did = did_server.publish(new_keys())
    segment = did.rsplit(":", 1)[1]
    path = did_server.root / segment / "did.json"
    did_server.write(path, {**json.loads(path.read_text()), "id": "did:web:evil.example"})
    with pytest.raises(AuthenticationError, match="has id 'did:web:evil.example'"):
        await resolver.resolve(did)


async def test_not_json_is_upstream_error(resolver: DidResolver, did_server: DidServer) -> None:
    (did_server.root / "garbage").mkdir(exist_ok=True)
    (did_server.root / "garbage" / "did.json").write_text("<html>")
    with pytest.raises(UpstreamError, match="not JSON"):
        await resolver.resolve(f"{did_server.host_did}:garbage")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("[" * 100_000, "not JSON"),  # beyond orjson's 1024 (the stdlib: RecursionError)
        ('{"id": "x", "service": [' + "[" * 200 + "]" * 200 + "]}", "nested too deeply"),
    ],
)
async def test_a_document_nested_too_deeply_is_upstream_error(
    resolver: DidResolver, did_server: DidServer, body: str, reason: str
) -> None:
    segment = f"deep-{len(body)}"
    (did_server.root / segment).mkdir(exist_ok=True)
    (did_server.root / segment / "did.json").write_text(body)
    with pytest.raises(UpstreamError, match=reason):
        await resolver.resolve(f"{did_server.host_did}:{segment}")


async def test_did_key_resolves_without_network(http: httpx.AsyncClient, clock: FakeClock) -> None:
    resolver = DidResolver(http, clock)
    public = generate_key("Ed25519").public_jwk()
    did = did_key_from_public_jwk(public)
    assert await resolver.resolve_key(f"{did}#{did.removeprefix('did:key:')}") == public
    assert await resolver.resolve_key(did, "authentication") == public
    with pytest.raises(AuthenticationError, match="keyAgreement"):
        await resolver.resolve_key(did, "keyAgreement")


async def test_unsupported_method(resolver: DidResolver) -> None:
    with pytest.raises(AuthenticationError, match="unsupported DID method"):
        await resolver.resolve_key("did:ethr:0xabc#key-1")


async def test_concurrent_resolutions_share_one_fetch(
    resolver: DidResolver, did_server: DidServer
) -> None:
    keys = new_keys()
    did = did_server.publish(keys)
    path = f"/{did.rsplit(':', 1)[1]}/did.json"
    results = await asyncio.gather(*(resolver.resolve_key(f"{did}#key-1") for _ in range(8)))
    assert results == [keys.signing.public_jwk()] * 8
    assert did_server.requests_for(path) == 1


async def test_oversized_document_is_refused(resolver: DidResolver, did_server: DidServer) -> None:
    (did_server.root / "huge").mkdir(exist_ok=True)
    (did_server.root / "huge" / "did.json").write_text(" " * (DidResolver.max_document_bytes + 1))
    with pytest.raises(UpstreamError, match="too large"):
        await resolver.resolve(f"{did_server.host_did}:huge")


async def test_failures_are_remembered_briefly(
    resolver: DidResolver, did_server: DidServer, clock: FakeClock
) -> None:
    did = f"{did_server.host_did}:nobody-{uuid.uuid4().hex[:8]}"
    path = f"/{did.rsplit(':', 1)[1]}/did.json"
    for _ in range(3):
        with pytest.raises(UpstreamError):
            await resolver.resolve(did)
    assert did_server.requests_for(path) == 1  # a made-up DID costs one fetch, not one a call
    clock.advance(11)
    with pytest.raises(UpstreamError):
        await resolver.resolve(did)
    assert did_server.requests_for(path) == 2
