"""Where we agree to send a peer's messages: only to the peer's own host.

A ``callbackAddress`` is chosen by the caller; without this check any authenticated caller
could make us POST (with our tokens, and retries) to an internal address. The caller is a
did:web participant, so its callback must be on the host its DID names; plain http only for
hosts listed in ``PHEMS_INSECURE_DID_HOSTS`` (loopback tests, the demo).
"""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import unquote, urlsplit

from connector.errors import InvalidMessageError


def did_web_host(did: str) -> str | None:
    """``did:web:host%3Aport:path`` -> ``host`` (lower case), or None for other methods."""
    if not did.startswith("did:web:"):
        return None
    authority = unquote(did.removeprefix("did:web:").split(":", 1)[0])
    return urlsplit(f"//{authority}").hostname


def check_callback(caller_did: str, address: str, insecure_hosts: Collection[str]) -> None:
    parts = urlsplit(address)
    host = did_web_host(caller_did)
    if host is None:
        raise InvalidMessageError(f"callbackAddress: {caller_did} is not a did:web participant")
    if (parts.hostname or "").lower() != host:
        raise InvalidMessageError(
            f"callbackAddress must be on the caller's own host {host!r}, not {parts.hostname!r}"
        )
    insecure = {urlsplit(f"//{h}").hostname for h in insecure_hosts}
    if parts.scheme != "https" and host not in insecure:
        raise InvalidMessageError("callbackAddress must use https")
