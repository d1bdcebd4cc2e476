"""The FHIR server's HTTP connection: one aiohttp session, explicit timeouts, retries, typed errors.

Every request is retried on transport errors and on the statuses in ``RETRY_STATUSES`` with the
``RetryPolicy`` back-off (or the server's ``Retry-After``), within ``Timeouts.request`` seconds
for all its attempts together: a server that never answers fails after that long, not after
attempts x read timeout. Any other failure, or running out of attempts or of time, raises
``FhirSourceError`` whose message names the request and whose ``url`` is the server's base URL.
Streaming downloads that break mid-way are retried too, skipping the lines already delivered,
so the caller sees every line exactly once or an error.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
import orjson

from adapters.fhir.auth import FhirAuth, NoAuth
from adapters.fhir.retry import RETRY_STATUSES, RetryPolicy, parse_retry_after
from connector.errors import FhirSourceError

FHIR_JSON = "application/fhir+json"
FHIR_NDJSON = "application/fhir+ndjson"
CHUNK = 1 << 16


@dataclass(frozen=True)
class Timeouts:
    """Seconds: to connect, to wait for the next bytes of a response, and for a whole
    (non-streamed) request with all its retries and back-off. Streamed downloads have no total
    limit (a large ``$export`` file takes what it takes); a stalled one trips ``read``."""

    connect: float = 10.0
    read: float = 60.0
    request: float = 120.0

    def __post_init__(self) -> None:
        if min(self.connect, self.read, self.request) <= 0:
            raise ValueError("Timeouts must be positive")


@dataclass(frozen=True)
class HttpResult:
    status: int
    headers: Mapping[str, str]  # case-insensitive (aiohttp's CIMultiDictProxy)
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body) if self.body else None


class _Transient(Exception):
    def __init__(self, problem: str, retry_after: float | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.retry_after = retry_after


class FhirHttp:
    def __init__(
        self,
        base_url: str,
        *,
        auth: FhirAuth | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        user_agent: str = "phems-connector",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth: FhirAuth = auth or NoAuth()
        self._ssl = ssl_context
        self.timeouts = limits = timeouts or Timeouts()
        self._stream_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=limits.connect, sock_read=limits.read
        )
        self.retry = retry or RetryPolicy()
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._clock = clock
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    # -- session ----------------------------------------------------------------------------

    def session(self) -> aiohttp.ClientSession:
        """The one session of this source's lifetime, created on first use (inside the loop)."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl if self._ssl is not None else True)
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"Accept": FHIR_JSON, "User-Agent": self._user_agent},
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- requests ---------------------------------------------------------------------------

    def describe(self, method: str, url: str) -> str:
        """``GET Patient?_count=7`` for URLs under the base, the full URL otherwise."""
        prefix = self.base_url + "/"
        return f"{method} {url[len(prefix) :] if url.startswith(prefix) else url}"

    async def get_json(
        self, url: str, *, headers: Mapping[str, str] | None = None, authenticate: bool = True
    ) -> Any:
        result = await self.request("GET", url, headers=headers, authenticate=authenticate)
        return self.parse_json(result, "GET", url)

    def parse_json(self, result: HttpResult, method: str, url: str) -> Any:
        try:
            return result.json()
        except orjson.JSONDecodeError as exc:
            raise FhirSourceError(
                f"{self.describe(method, url)}: response is not JSON ({exc})", url=self.base_url
            ) from None

    async def post_form(
        self,
        url: str,
        form: Mapping[str, str] | list[tuple[str, str]],
        *,
        headers: Mapping[str, str] | None = None,
        authenticate: bool = True,
    ) -> Any:
        body = urlencode(list(form.items()) if isinstance(form, Mapping) else form)
        result = await self.request(
            "POST",
            url,
            data=body.encode(),
            headers={**(headers or {}), "Content-Type": "application/x-www-form-urlencoded"},
            authenticate=authenticate,
        )
        return self.parse_json(result, "POST", url)

    async def request(
        self,
        method: str,
        url: str,
        *,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        authenticate: bool = True,
        ok: tuple[int, ...] = (200,),
    ) -> HttpResult:
        what = self.describe(method, url)
        limits = self.timeouts
        started = self._clock()
        deadline = started + limits.request
        refreshed = False
        last = ""
        attempt = 0
        while attempt < self.retry.attempts:
            attempt += 1
            retry_after: float | None = None
            timeout = aiohttp.ClientTimeout(
                total=max(deadline - self._clock(), 0.001),
                sock_connect=limits.connect,
                sock_read=limits.read,
            )
            try:
                request_headers = await self._headers(headers, authenticate)
                async with self.session().request(
                    method, url, data=data, headers=request_headers, timeout=timeout
                ) as resp:
                    body = await resp.read()
                    if resp.status in ok:
                        return HttpResult(resp.status, resp.headers, body)
                    if self._refresh_auth(resp.status, authenticate, refreshed):
                        refreshed = True
                        last = _problem(resp, body)
                        continue
                    _raise_or_transient(resp, body, what, self.base_url)
            except _Transient as exc:
                last, retry_after = exc.problem, exc.retry_after
            except aiohttp.ClientSSLError as exc:
                raise _tls_error(what, exc, self.base_url) from None
            except (aiohttp.ClientError, TimeoutError) as exc:
                last = _transport_problem(exc)
            if attempt >= self.retry.attempts:
                break
            delay = self.retry.delay(attempt, self._rng, retry_after)
            if self._clock() + delay >= deadline:
                elapsed = self._clock() - started
                raise FhirSourceError(
                    f"{what} failed after {attempt} attempts in {elapsed:.1f} s, the request "
                    f"timeout ({limits.request:g} s, PHEMS_FHIR_REQUEST_TIMEOUT_SECONDS): {last}",
                    url=self.base_url,
                )
            await self._sleep(delay)
        raise FhirSourceError(
            f"{what} failed after {self.retry.attempts} attempts: {last}", url=self.base_url
        )

    async def stream_lines(self, url: str, *, authenticate: bool = True) -> AsyncIterator[bytes]:
        """Non-empty lines of an NDJSON download, streamed; a broken transfer is resumed."""
        what = self.describe("GET", url)
        timeout = self._stream_timeout
        delivered = 0
        refreshed = False
        last = ""
        for attempt in range(1, self.retry.attempts + 1):
            retry_after: float | None = None
            try:
                request_headers = await self._headers({"Accept": FHIR_NDJSON}, authenticate)
                response = self.session().get(url, headers=request_headers, timeout=timeout)
                async with response as resp:
                    if resp.status != 200:
                        body = await resp.read()
                        if self._refresh_auth(resp.status, authenticate, refreshed):
                            refreshed = True
                            last = _problem(resp, body)
                            continue
                        _raise_or_transient(resp, body, what, self.base_url)
                    skip = delivered
                    async for line in _lines(resp.content):
                        if skip:
                            skip -= 1
                            continue
                        delivered += 1
                        yield line
                    return
            except _Transient as exc:
                last, retry_after = exc.problem, exc.retry_after
            except aiohttp.ClientSSLError as exc:
                raise _tls_error(what, exc, self.base_url) from None
            except (aiohttp.ClientError, TimeoutError) as exc:
                last = _transport_problem(exc)
            if attempt < self.retry.attempts:
                await self._sleep(self.retry.delay(attempt, self._rng, retry_after))
        raise FhirSourceError(
            f"{what} failed after {self.retry.attempts} attempts "
            f"({delivered} lines received): {last}",
            url=self.base_url,
        )

    async def _headers(self, extra: Mapping[str, str] | None, authenticate: bool) -> dict[str, str]:
        headers = dict(extra or {})
        if authenticate:
            value = await self.auth.authorization(self)
            if value:
                headers["Authorization"] = value
        return headers

    def _refresh_auth(self, status: int, authenticate: bool, refreshed: bool) -> bool:
        return status == 401 and authenticate and not refreshed and self.auth.invalidate()

    def same_origin(self, url: str) -> bool:
        ours, theirs = urlsplit(self.base_url), urlsplit(url)
        return (ours.scheme, ours.netloc) == (theirs.scheme, theirs.netloc)


async def _lines(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    # Our own splitting: StreamReader.readline() refuses lines above its buffer limit, and a
    # FHIR resource with an attachment is easily larger than that.
    pending = b""
    async for chunk in content.iter_chunked(CHUNK):
        pending += chunk
        if b"\n" not in chunk:
            continue
        *complete, pending = pending.split(b"\n")
        for line in complete:
            if line.strip():
                yield line
    if pending.strip():
        yield pending


def _raise_or_transient(
    resp: aiohttp.ClientResponse, body: bytes, what: str, base_url: str
) -> None:
    problem = _problem(resp, body)
    if resp.status in RETRY_STATUSES:
        now = datetime.now(UTC)
        raise _Transient(problem, parse_retry_after(resp.headers.get("Retry-After"), now))
    hint = ""
    if resp.status in (401, 403):
        hint = " (check PHEMS_FHIR_AUTH and its credentials)"
    raise FhirSourceError(f"{what}: {problem}{hint}", url=base_url)


def _problem(resp: aiohttp.ClientResponse, body: bytes) -> str:
    return f"HTTP {resp.status} {resp.reason or ''}".rstrip() + _diagnostics(body)


def _diagnostics(body: bytes) -> str:
    """The useful part of an error body: OperationOutcome issues or an OAuth error."""
    try:
        doc = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        text = body[:300].decode("utf-8", "replace").strip()
        return f": {text}" if text else ""
    if isinstance(doc, dict) and doc.get("resourceType") == "OperationOutcome":
        found = doc.get("issue")
        said = [
            i.get("diagnostics") or _text(i.get("details")) or i.get("code")
            for i in (found if isinstance(found, list) else [])[:3]
            if isinstance(i, dict)
        ]
        issues = [str(text) for text in said if text]
        return ": " + "; ".join(issues) if issues else ""
    if isinstance(doc, dict) and "error" in doc:
        return f": {doc['error']}: {doc.get('error_description', '')}".rstrip(": ")
    return ""


def _text(details: Any) -> Any:
    return details.get("text") if isinstance(details, dict) else None


def _transport_problem(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"


def _tls_error(what: str, exc: aiohttp.ClientSSLError, base_url: str) -> FhirSourceError:
    return FhirSourceError(
        f"{what}: TLS failed ({exc}); for a private CA set PHEMS_FHIR_CA_BUNDLE", url=base_url
    )
