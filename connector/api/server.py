"""The HTTP server `phems-connector serve` runs: uvicorn (httptools parser, uvloop) with the
limits on slow and greedy clients that uvicorn lacks.

uvicorn 0.55 arms no timer before a request's headers are in (a connection that sends nothing,
or trickles its headers, is held forever), has no header size limit with httptools, and no
connection cap (``limit_concurrency`` answers 503 once a request's headers are in: the slow
ones never get there). The alternatives were looked at (docs/install.md, "Limits"): Granian
has a header read timeout and a header buffer limit but no body read timeout and no connection
cap; Hypercorn has a read timeout but no connection cap, and parses HTTP in Python (h11): half
the requests a second of uvicorn (``bench/bench_server.py``). So uvicorn stays (the
Dockerfile, the chart and the tests run it unchanged) with this protocol:

- a request's line and headers must arrive within ``header_read_timeout_seconds`` of the
  connection, or of the previous answer on it: else the connection is closed;
- they may be ``max_header_bytes`` at most: else ``431`` and the connection is closed;
- at most ``max_connections`` connections are open: a further one is closed at once.

Body size limits and the body read timeout are the application's (``connector.api.limits``),
so they hold under any server. Closed connections are logged as one line per kind at most
every ``LOG_EVERY_SECONDS`` (a flood of slow clients must not flood the log too).
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from connector.settings import Settings

log = logging.getLogger(__name__)

LOG_EVERY_SECONDS = 10.0
_431 = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: application/problem+json\r\nconnection: close\r\ncontent-length: %d\r\n\r\n"
)


@dataclass(frozen=True)
class ServerLimits:
    header_read_timeout_seconds: float
    max_header_bytes: int
    max_connections: int

    @classmethod
    def of(cls, settings: Settings) -> ServerLimits:
        return cls(
            settings.header_read_timeout_seconds,
            settings.max_header_bytes,
            settings.max_connections,
        )


class _Tally:
    """Counts closed connections of one kind and logs them at most every LOG_EVERY_SECONDS."""

    def __init__(self, words: str) -> None:
        self.words = words
        self.count = 0
        self.logged_at = -LOG_EVERY_SECONDS

    def add(self, client: Any) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self.logged_at >= LOG_EVERY_SECONDS:
            log.warning("closed %d connection(s) %s (last from %s)", self.count, self.words, client)
            self.count, self.logged_at = 0, now


class _HeadersTooLarge(Exception):
    pass


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header read timeout, a header size limit and a
    connection cap (see the module docstring). ``limits`` is set by ``protocol_class``."""

    limits: ClassVar[ServerLimits]
    over_cap: ClassVar[_Tally]
    too_slow: ClassVar[_Tally]
    too_large: ClassVar[_Tally]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._refused = True
            self.over_cap.add(self.client)
            transport.abort()
            return
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # uvicorn's, except that a refused request gets no second answer (a 400 after our 431).
        if self._refused:
            return
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if not self._refused:
                msg = "Invalid HTTP request received."
                self.logger.warning(msg)
                self.send_400_response(msg)
        except httptools.HttpParserUpgrade:
            self._unsupported_upgrade_warning()  # no WebSockets here (ws="none")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        if self._header_timer is None:
            self._arm_header_timer()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._cancel_header_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        waiting = bool(self.pipeline)  # a pipelined request whose headers are all in
        super().on_response_complete()
        if not waiting and not self.transport.is_closing():
            self._arm_header_timer()

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.limits.max_header_bytes:
            self._refused = True
            self._cancel_header_timer()
            self.too_large.add(self.client)
            body = (
                b'{"type":"about:blank","title":"Request Header Fields Too Large","status":431,'
                b'"detail":"request line and headers larger than %d bytes"}'
                % self.limits.max_header_bytes
            )
            self.transport.write(_431 % len(body) + body)
            self.transport.close()
            raise _HeadersTooLarge  # stops the parser

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(
            self.limits.header_read_timeout_seconds, self._headers_late
        )

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.too_slow.add(self.client)
            self.transport.abort()


def protocol_class(limits: ServerLimits) -> type[GuardedHttpToolsProtocol]:
    """A protocol class bound to ``limits`` (uvicorn instantiates it per connection)."""
    seconds = limits.header_read_timeout_seconds
    return type(
        "GuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {
            "limits": limits,
            "over_cap": _Tally(f"over the cap of {limits.max_connections} open connections"),
            "too_slow": _Tally(f"that sent no complete request headers within {seconds:g} s"),
            "too_large": _Tally(f"with request headers over {limits.max_header_bytes} bytes"),
        },
    )


def raise_file_limit(needed: int) -> None:
    """Raise the soft limit of open files towards ``needed`` (within the hard limit): every
    connection is a file descriptor, and the cap is useless if the limit is below it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < needed:
            log.warning(
                "open files limited to %d: fewer than PHEMS_MAX_CONNECTIONS needs (%d)",
                target,
                needed,
            )


def server_config(app: Any, settings: Settings) -> uvicorn.Config:
    limits = ServerLimits.of(settings)
    # Connections, plus the database pool, outbound clients, log and data files.
    raise_file_limit(limits.max_connections + settings.database_pool_size * 2 + 256)
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=protocol_class(limits),
        ws="none",
        log_config=None,
        # Our middleware logs every request (connector.access). uvicorn's access logger is
        # silenced (logs.py), but it still formats its arguments (quoting the path) for each
        # response unless switched off here.
        access_log=False,
        proxy_headers=True,
        lifespan="on",
    )
