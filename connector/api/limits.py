"""What one request's body may make the application hold, whichever server runs it.

- **Size, per surface** (``*_max_body_bytes`` settings: management, DSP, data plane, and the
  catalog for every other route). A declared ``Content-Length`` over the limit is refused with
  413 when the route first asks for the body, before a byte of it is read; a chunked body as
  soon as it passes the limit. Routes ask for their body after the caller is authenticated
  (DSP and data plane routes read it themselves after the token check; management routes
  authenticate first, ``connector.api.deps.AuthenticatedFirst``), so an unauthenticated
  client gets its 401 unread. Starlette's own limiter (FastAPI's ``max_body_size``) is not
  used: it answers in plain text, and turns any answer to an over-long request, a 401 too,
  into its 413.
- **Read timeout** (``body_read_timeout_seconds``): a client that sends no part of a body it
  announced for that long gets 408, and the connection is closed. An upload the client
  aborts is one log line, not an error with a traceback.

The 413 and 408 are raised as ``HTTPException`` from ``receive``: the error handlers answer
them in the surface's form (problem+json, or a DSP error body on DSP routes) with
``Connection: close`` (the rest of the body is never read). Header size, header read
timeout and the connection cap are the server's (``connector.api.server``): headers are read
before any application code runs.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connector.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BodySurfaces:
    management: int
    dsp: int
    dataplane: int
    catalog: int
    read_timeout_seconds: float

    @classmethod
    def of(cls, settings: Settings) -> BodySurfaces:
        return cls(
            settings.management_max_body_bytes,
            settings.dsp_max_body_bytes,
            settings.dataplane_max_body_bytes,
            settings.catalog_max_body_bytes,
            settings.body_read_timeout_seconds,
        )

    def limit(self, path: str) -> tuple[str, int]:
        """The surface ``path`` belongs to, and its limit."""
        if path.startswith("/management/") or path == "/management":
            return "management API", self.management
        if path.startswith("/dsp/"):
            return "DSP", self.dsp
        if path.startswith("/dataplane/"):
            return "data plane", self.dataplane
        return "catalog", self.catalog


class BodyTooLarge(HTTPException):
    def __init__(self, surface: str, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes, the {surface}'s limit")


class BodyReadTimeout(HTTPException):
    def __init__(self, seconds: float) -> None:
        super().__init__(408, f"no part of the request body arrived for {seconds:g} s")


class BodyLimits:
    def __init__(self, app: ASGIApp, limits: BodySurfaces) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        surface, limit = self.limits.limit(scope["path"])
        timeout = self.limits.read_timeout_seconds
        declared = _content_length(scope)
        received = 0
        complete = False

        async def guarded() -> Message:
            nonlocal received, complete
            if complete:  # the body is in: what follows is a wait for the disconnect
                return await receive()
            if declared is not None and declared > limit:
                complete = True
                raise BodyTooLarge(surface, limit)
            try:
                async with asyncio.timeout(timeout):
                    message = await receive()
            except TimeoutError:
                complete = True
                log.warning(
                    "request body too slow: %s %s sent nothing for %g s after %d bytes; "
                    "answered 408",
                    scope["method"],
                    scope["path"],
                    timeout,
                    received,
                )
                raise BodyReadTimeout(timeout) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > limit:
                    complete = True
                    raise BodyTooLarge(surface, limit)
            elif message["type"] == "http.disconnect":
                complete = True
                log.warning(
                    "upload aborted: the client of %s %s went away after %d bytes of the body",
                    scope["method"],
                    scope["path"],
                    received,
                )
            return message

        await self.app(scope, guarded, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed one before we see it
    return None
