"""Where we agree to send a peer's messages: only to hosts the peer itself controls.

A ``callbackAddress`` is chosen by the caller; without this check any authenticated caller
could make us POST (with our tokens, and retries) to an internal address. The caller is a
did:web participant, so its callback must be on the host its DID names, or on a host its DID
document declares as a service endpoint (Eclipse EDC and Tractus-X participants keep their DID
document on an identity hub or wallet and declare their protocol endpoint there). Plain http
only for hosts listed in ``PHEMS_INSECURE_DID_HOSTS`` (loopback tests, the demo).

A declared host is the DID controller's word, not proof that it controls the host: so it must
resolve to public addresses (or ones in ``PHEMS_PEER_NETWORKS``), never to a private,
loopback, link-local or otherwise non-global one, however spelt, unless listed in
``PHEMS_INSECURE_DID_HOSTS``; and whatever the host, the sender connects only to such
addresses (``connector.egress``). A participant who controls the DNS of its own host can still
point it anywhere; that was so before declared hosts, and is why callbacks use https.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

import httpcore

from connector.egress import EgressPolicy, EgressRefused
from connector.errors import InvalidMessageError, PhemsError
from connector.identity.resolver import DidResolver


def did_web_host(did: str) -> str | None:
    """``did:web:host%3Aport:path`` -> ``host`` (lower case), or None for other methods."""
    if not did.startswith("did:web:"):
        return None
    authority = unquote(did.removeprefix("did:web:").split(":", 1)[0])
    return urlsplit(f"//{authority}").hostname


def service_hosts(document: dict[str, Any]) -> set[str]:
    """The hosts (lower case) of every URL among a DID document's ``serviceEndpoint`` values,
    which DID Core allows as a string, a map or a set of either."""

    def urls(value: Any) -> Iterator[str]:
        if isinstance(value, str):
            yield value
        elif isinstance(value, list):
            for item in value:
                yield from urls(item)
        elif isinstance(value, dict):
            for item in value.values():
                yield from urls(item)

    services = document.get("service")
    hosts: set[str] = set()
    for service in services if isinstance(services, list) else []:
        if isinstance(service, dict):
            for url in urls(service.get("serviceEndpoint")):
                parts = urlsplit(url)
                if parts.scheme in ("http", "https") and parts.hostname:
                    hosts.add(parts.hostname.lower())
    return hosts


async def _check_declared(parts: SplitResult, what: str, egress: EgressPolicy) -> None:
    """A declared host must resolve to addresses peers may make us reach: checked on the
    addresses, not the spelling (``127.1``, ``0x7f000001``, ``localhost.`` are loopback). The
    sender checks again the address it connects to (``connector.egress``)."""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        await egress.resolve(parts.hostname or "", port)
    except EgressRefused:
        raise InvalidMessageError(
            f"{what}: {parts.hostname!r} is declared in the caller's DID document but is an "
            "internal address; only the caller's own host may be one"
        ) from None
    except httpcore.ConnectError:
        pass  # not resolvable now: nothing to check, and nothing the sender could reach


async def check_callback(
    caller_did: str,
    address: str,
    insecure_hosts: Collection[str],
    resolver: DidResolver | None = None,
    *,
    what: str = "callbackAddress",
) -> None:
    """Refuse (``InvalidMessageError``) a callback on a host the caller does not control.
    ``resolver`` gives the caller's DID document (cached since its token was checked) for the
    hosts it declares; without one, only the DID's own host is accepted. ``what`` names the
    address in the error (the same rule holds for any URL a peer gives us to call)."""
    parts = urlsplit(address)
    own = did_web_host(caller_did)
    if own is None:
        raise InvalidMessageError(f"{what}: {caller_did} is not a did:web participant")
    host = (parts.hostname or "").lower()
    insecure = {urlsplit(f"//{h}").hostname for h in insecure_hosts}
    if host != own:
        declared: set[str] = set()
        if resolver is not None:
            try:
                declared = service_hosts(await resolver.resolve(caller_did))
            except PhemsError:
                declared = set()
        if host not in declared:
            raise InvalidMessageError(
                f"{what} must be on the caller's own host {own!r} or on a host its "
                f"DID document declares as a service endpoint, not {parts.hostname!r}"
            )
        if host not in insecure:
            egress = resolver.egress if resolver is not None else None
            await _check_declared(
                parts, what, egress or EgressPolicy(insecure_hosts=insecure_hosts)
            )
    if parts.scheme != "https" and host not in insecure:
        raise InvalidMessageError(f"{what} must use https")
