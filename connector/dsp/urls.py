"""Callback addresses: validation on receipt and joining with binding paths on send.

DSP 2025-1 HTTPS bindings: ``callbackAddress`` is the base URL under which the counterparty's
callback paths live; HTTPS support is required, other schemes optional (we also accept ``http``,
which the deployment restricts to development hosts); a trailing ``/`` may or may not be present.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

_SCHEMES = frozenset({"http", "https"})
# RFC 3986 pchar minus the percent sign: keeps "urn:uuid:..." readable, encodes "/".
_SEGMENT_SAFE = ":@!$&'()*+,;=-._~"


def callback_address_problem(value: str) -> str | None:
    """Why ``value`` is not a usable callback base URL, or None if it is.

    Everything an HTTP client would refuse when sending, or read differently from us, is
    refused here: a stored address that cannot be sent to would be retried in vain."""
    if not value or value != value.strip() or any(c.isspace() for c in value):
        return "callbackAddress must be an absolute http(s) URL without whitespace"
    if not value.isascii() or not value.isprintable() or "\\" in value:
        return "callbackAddress must be a URL of printable ASCII characters without '\\'"
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError for a non-numeric or out-of-range port
    except ValueError as exc:
        return f"callbackAddress is not a valid URL: {exc}"
    if parts.scheme not in _SCHEMES:
        return f"callbackAddress scheme must be http or https, got {parts.scheme or 'none'!r}"
    if "@" in parts.netloc:
        return "callbackAddress must not carry a user name or password"
    if not parts.hostname:
        return "callbackAddress has no host"
    if port == 0:
        return "callbackAddress has port 0"
    if not parts.hostname.startswith("[") and ":" not in parts.hostname:
        try:
            parts.hostname.encode("idna")  # empty or over-long labels
        except UnicodeError:
            return f"callbackAddress host {parts.hostname!r} is not a valid host name"
    if parts.query or parts.fragment:
        return "callbackAddress must not carry a query or fragment"
    return None


def join_url(base: str, *segments: str) -> str:
    """``base`` followed by path ``segments``, tolerant of a trailing ``/`` on ``base``.

    Each segment is one path segment and is percent-encoded (a process id may be any IRI), e.g.
    ``join_url(callback, "negotiations", consumer_pid, "agreement")``.
    """
    path = "/".join(quote(s, safe=_SEGMENT_SAFE) for s in segments)
    return f"{base.rstrip('/')}/{path}" if path else base.rstrip("/")


# A path segment naming the counterparty's pid before it is known (``join_url(base, "{pid}")``
# writes it); filled in when the message is sent.
PID_PLACEHOLDER = quote("{pid}", safe="")


def fill_pid(url: str, pid: str) -> str:
    """``url`` with the counterparty's process id in place of the ``{pid}`` placeholder."""
    return url.replace(PID_PLACEHOLDER, quote(pid, safe=_SEGMENT_SAFE))
