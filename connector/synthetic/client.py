"""Fetching synthetic patients, from Python: the data user's side of a synthetic transfer.

    from connector.synthetic.client import fetch

    fetched = fetch(Path("patients.json"), connector="http://127.0.0.1:8080", api_key=KEY,
                    transfer_id=TID, patients=100)
    fetched.patients, fetched.resources, fetched.report   # counts, and the report (dict)

It talks to the data user's own running connector (its management API), which holds the
transfer's data plane token and pulls from the hospital
(``POST /management/transfers/{id}/data`` with ``patients``, ``format``, ``part``, ``seed``).
Given an agreement instead of a transfer, it first starts a transfer in the synthetic format.
A 503 with ``Retry-After`` (the hospital is preparing the data or fitting its model) is
waited out, up to ``timeout`` seconds in all. The answer is written to a temporary file next
to ``out`` and moved into place once complete. Errors are typed::

    FetchError
    ├── ConnectorUnreachable   the connector's management API cannot be reached
    ├── FetchRefused           the connector or the hospital refused (403 policy, 429
    │                          budget or rate; ``.status``), or the request is invalid
    └── FetchTimedOut          the data were not ready within the timeout
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

SYNTHETIC_FORMAT = "FHIR-Synthetic-PULL"
Waiting = Callable[[float, str], None]  # (seconds, why): told before each wait


class FetchError(Exception):
    """A fetch that gave no data; the message is one line a user can act on."""


class ConnectorUnreachable(FetchError):
    pass


class FetchRefused(FetchError):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class FetchTimedOut(FetchError):
    pass


@dataclass
class Fetched:
    """What was written: the transfer, the file, how many patients and resources (for
    ``part=data``), and the model's report when the answer carried it (a Bundle does)."""

    transfer_id: str
    out: Path
    media_type: str
    patients: int = 0
    resources: int = 0
    report: dict[str, Any] | None = field(default=None, repr=False)


def fetch(
    out: Path,
    *,
    connector: str,
    api_key: str,
    transfer_id: str | None = None,
    agreement_id: str | None = None,
    patients: int | None = None,
    fmt: str | None = None,
    part: str | None = None,
    seed: int | None = None,
    timeout: float = 600.0,
    waiting: Waiting | None = None,
) -> Fetched:
    """Pull synthetic data under ``transfer_id`` (or a new transfer under ``agreement_id``)
    into ``out``; the request fields are the synthetic fulfilment's (docs/synthetic.md)."""
    if (transfer_id is None) == (agreement_id is None):
        raise FetchRefused("give a transfer id or an agreement id (one of them)", 400)
    deadline = time.monotonic() + timeout
    params = {
        k: str(v)
        for k, v in (("patients", patients), ("format", fmt), ("part", part), ("seed", seed))
        if v is not None
    }
    with httpx.Client(
        base_url=connector.rstrip("/"),
        headers={"X-Api-Key": api_key},
        timeout=httpx.Timeout(30.0, read=max(timeout, 30.0)),
    ) as http:
        if transfer_id is None:
            assert agreement_id is not None
            transfer_id = _start(http, agreement_id, deadline, waiting)
        path = f"/management/transfers/{transfer_id}/data"
        while True:
            with _send(http, "POST", path, params=params) as response:
                if response.status_code == 200:
                    media = response.headers.get("content-type", "")
                    _write(response, out)
                    return _described(transfer_id, out, media)
                response.read()
                retry = _retry_after(response)
                if response.status_code != 503 or retry is None:
                    raise _refused(response, f"transfer {transfer_id}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise FetchTimedOut(
                        f"the data were not ready within {timeout:g} s: {_detail(response)}"
                    )
                pause = min(float(retry), left)
                if waiting is not None:
                    waiting(pause, _detail(response))
            time.sleep(pause)


def _start(http: httpx.Client, agreement_id: str, deadline: float, waiting: Waiting | None) -> str:
    """Start a transfer in the synthetic format under the agreement; its id once STARTED."""
    body = {"agreementId": agreement_id, "format": SYNTHETIC_FORMAT}
    with _send(http, "POST", "/management/transfers", json=body) as response:
        response.read()
        if response.status_code != 201:
            raise _refused(response, f"agreement {agreement_id}")
        tid = str(response.json()["id"])
    told = False
    while True:
        with _send(http, "GET", f"/management/transfers/{tid}") as response:
            response.read()
            if response.status_code != 200:
                raise _refused(response, f"transfer {tid}")
            state = response.json().get("state")
        if state == "STARTED":
            return tid
        if state in ("TERMINATED", "COMPLETED", "SUSPENDED"):
            raise FetchRefused(f"the hospital did not start transfer {tid}: it is {state}", 403)
        if time.monotonic() > deadline:
            raise FetchTimedOut(f"transfer {tid} did not start in time (still {state})")
        if waiting is not None and not told:
            waiting(0.2, f"transfer {tid} requested; waiting for the hospital to start it")
            told = True
        time.sleep(0.2)


def _send(http: httpx.Client, method: str, path: str, **kwargs: Any) -> closing[httpx.Response]:
    """The response, its body not read yet (closed on leaving the ``with``)."""
    try:
        return closing(http.send(http.build_request(method, path, **kwargs), stream=True))
    except httpx.HTTPError as exc:
        raise ConnectorUnreachable(
            f"the connector at {http.base_url} cannot be reached: {type(exc).__name__}"
        ) from None


def _write(response: httpx.Response, out: Path) -> None:
    partial = out.with_name(f".{out.name}.partial")
    try:
        with partial.open("wb") as sink:
            for chunk in response.iter_bytes():
                sink.write(chunk)
        os.replace(partial, out)
    except httpx.HTTPError as exc:
        partial.unlink(missing_ok=True)
        raise ConnectorUnreachable(
            f"the answer broke off while it was written: {type(exc).__name__}"
        ) from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _described(transfer_id: str, out: Path, media_type: str) -> Fetched:
    fetched = Fetched(transfer_id, out, media_type)
    if media_type.startswith("application/fhir+ndjson"):
        with out.open("rb") as lines:
            for line in lines:
                if line.strip():
                    fetched.resources += 1
                    fetched.patients += b'"resourceType":"Patient"' in line.replace(b" ", b"")
    elif media_type.startswith("application/fhir+json"):
        bundle = json.loads(out.read_bytes())
        for entry in bundle.get("entry", ()):
            resource = entry.get("resource", {})
            kind = resource.get("resourceType")
            if kind == "DocumentReference":
                fetched.report = report_of(resource)
                continue
            fetched.resources += 1
            fetched.patients += kind == "Patient"
    elif media_type.startswith("application/json"):
        fetched.report = json.loads(out.read_bytes())
    return fetched


def report_of(document: Mapping[str, Any]) -> dict[str, Any] | None:
    """The report JSON a synthetic Bundle's DocumentReference carries."""
    for content in document.get("content", ()):
        attachment = content.get("attachment", {})
        if attachment.get("contentType") == "application/json" and attachment.get("data"):
            parsed = json.loads(base64.b64decode(attachment["data"]))
            return parsed if isinstance(parsed, dict) else None
    return None


def _retry_after(response: httpx.Response) -> int | None:
    try:
        return max(int(response.headers["retry-after"]), 1)
    except (KeyError, ValueError):
        return None


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("title") or response.reason_phrase)
    return response.reason_phrase


def _refused(response: httpx.Response, what: str) -> FetchError:
    status = response.status_code
    if status == 401:
        return FetchRefused("the connector refused the management API key", status)
    return FetchRefused(f"{what}: HTTP {status}: {_detail(response)}", status)
