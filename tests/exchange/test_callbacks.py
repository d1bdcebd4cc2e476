"""Where a caller may ask us to send its messages (``callbackAddress``): its DID's own host, or
a host its DID document declares as a service endpoint (as Eclipse EDC participants do, whose
DID document lives on an identity hub). DID documents served over real HTTP on loopback."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from connector.errors import InvalidMessageError
from connector.exchange.callbacks import check_callback, service_hosts
from connector.identity.did import build_did_document
from connector.identity.resolver import DidResolver
from tests.identity.conftest import DidServer, new_keys


def _publish(did_server: DidServer, services: list[Any]) -> str:
    segment = f"hub-{uuid.uuid4().hex[:12]}"
    did = f"{did_server.host_did}:{segment}"
    document = build_did_document(did, new_keys(), f"http://{did_server.netloc}/dsp/2025-1")
    document["service"] = services
    did_server.write(did_server.root / segment / "did.json", document)
    return did


EDC_LIKE = [
    {"id": "#cs", "type": "CredentialService", "serviceEndpoint": "https://hub.example/cs"},
    {
        "id": "#dsp",
        "type": "ProtocolEndpoint",
        "serviceEndpoint": "https://ControlPlane.Example:8282/api/dsp",
    },
    {"id": "#map", "type": "Other", "serviceEndpoint": {"origins": ["https://third.example"]}},
    {"id": "#odd", "type": "Other", "serviceEndpoint": ["mailto:x@y.example", 7]},
]


def test_service_hosts_from_every_endpoint_form() -> None:
    assert service_hosts({"service": EDC_LIKE}) == {
        "hub.example",
        "controlplane.example",
        "third.example",
    }
    assert service_hosts({}) == set() and service_hosts({"service": "nonsense"}) == set()


async def test_a_declared_service_host_is_accepted(
    resolver: DidResolver, did_server: DidServer
) -> None:
    did = _publish(did_server, EDC_LIKE)
    await check_callback(did, "https://controlplane.example:8282/api/dsp/2025-1", (), resolver)
    await check_callback(did, f"http://{did_server.netloc}/dsp", [did_server.netloc], resolver)


@pytest.mark.parametrize(
    ("address", "words"),
    [
        ("https://10.0.0.1/dsp", "declares as a service endpoint, not '10.0.0.1'"),
        ("http://controlplane.example:8282/api/dsp", "must use https"),
    ],
)
async def test_an_undeclared_host_or_plain_http_is_refused(
    resolver: DidResolver, did_server: DidServer, address: str, words: str
) -> None:
    did = _publish(did_server, EDC_LIKE)
    with pytest.raises(InvalidMessageError, match=words):
        await check_callback(did, address, (), resolver)


async def test_without_a_resolvable_document_only_the_dids_own_host(
    resolver: DidResolver, did_server: DidServer
) -> None:
    gone = f"{did_server.host_did}:nobody-{uuid.uuid4().hex[:8]}"  # 404 at resolution
    with pytest.raises(InvalidMessageError, match="own host"):
        await check_callback(gone, "https://controlplane.example/dsp", (), resolver)
    with pytest.raises(InvalidMessageError, match="not a did:web participant"):
        await check_callback("did:key:z6Mk", "https://controlplane.example/dsp", (), resolver)
    await check_callback(gone, f"http://{did_server.netloc}/x", [did_server.netloc], None)


@pytest.mark.parametrize(
    "internal",
    [
        "https://10.0.0.1/dsp",
        "https://[::1]:8443/dsp",
        "https://169.254.169.254/x",
        "https://localhost/dsp",
        # Other spellings of loopback (issue 18, finding 8): the address counts, not the text.
        "https://127.1/dsp",
        "https://2130706433/dsp",
        "https://0x7f000001/dsp",
        "https://0177.0.0.1/dsp",
        "https://localhost./dsp",
    ],
)
async def test_a_declared_internal_address_is_refused(
    resolver: DidResolver, did_server: DidServer, internal: str
) -> None:
    """Declaring a host is no proof of controlling it: a participant must not be able to make
    us POST into a hospital's network by listing an internal address in its DID document."""
    did = _publish(
        did_server, [{"id": "#x", "type": "ProtocolEndpoint", "serviceEndpoint": internal}]
    )
    with pytest.raises(InvalidMessageError, match="internal address"):
        await check_callback(did, internal, (), resolver)
