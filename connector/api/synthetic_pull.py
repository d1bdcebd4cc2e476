"""Synthetic patients from the catalog UI: the form's number of patients (and purpose) sent
through this connector's data plane client (``DataPuller``, as ``POST
/management/transfers/{id}/data``), and the hospital's answer streamed to the browser as a
download: the FHIR Bundle (its last entry the model's report) or the report page.

Whatever stops it is a ``QueryFailure`` for the transfer page, in the words of the hospital's
problem ``detail`` (a 503 while the hospital fits its model names when to try again).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from fastapi.responses import StreamingResponse

from connector.api.query_run import HEADLINES, QueryFailure, problem_detail, read_capped
from connector.errors import PhemsError
from connector.exchange.pull import DataPuller

# A Bundle holds at most this many patients at the hospital (docs/synthetic.md); more come as
# NDJSON, which this page does not offer.
MAX_PATIENTS: Final = 10_000
PARTS: Final = {
    "data": ("application/fhir+json", "synthetic-patients-{n}.json"),
    "report.html": ("text/html; charset=utf-8", "synthetic-report.html"),
}
SYNTHETIC_HEADLINES: Final = {
    **HEADLINES,
    400: ("The hospital refused the request", ""),
    403: (
        "The agreement's conditions do not permit this request",
        "The hospital named the condition that failed (the number of patients a call may "
        "deliver, say): change the request or negotiate an agreement that permits it.",
    ),
    503: (
        "The hospital is preparing its data",
        "It builds its tables and fits its synthetic model once for each version of its data; "
        "nothing was spent.",
    ),
}


@dataclass(frozen=True)
class SyntheticAsk:
    patients: int
    part: str
    purpose: str

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> SyntheticAsk:
        text = fields.get("patients", "").strip()
        if not text.isdigit() or not 1 <= int(text) <= MAX_PATIENTS:
            raise QueryFailure(
                400, "The form has a mistake", f"Number of patients: 1 to {MAX_PATIENTS}"
            )
        part = fields.get("part", "data")
        if part not in PARTS:
            raise QueryFailure(400, "The form has a mistake", "choose the patients or the report")
        purpose = fields.get("purpose", "").strip()[:2048]
        return cls(int(text), part, purpose)

    def body(self) -> bytes:
        ask: dict[str, object] = {"patients": self.patients, "part": self.part}
        if self.part == "data":
            ask["format"] = "bundle"
        if self.purpose:
            ask["purpose"] = self.purpose
        return json.dumps(ask).encode()


async def download(puller: DataPuller, tid: str, ask: SyntheticAsk) -> StreamingResponse:
    try:
        pulled = await puller.pull(tid, body=ask.body(), media_type="application/json", params={})
    except PhemsError as exc:
        raise QueryFailure.answered(
            exc.status, exc.detail, exc.headers(), headlines=SYNTHETIC_HEADLINES
        ) from None
    if pulled.status != 200:
        detail = problem_detail(await read_capped(pulled.chunks))
        raise QueryFailure.answered(
            pulled.status, detail, pulled.headers, headlines=SYNTHETIC_HEADLINES
        )
    media, name = PARTS[ask.part]
    return StreamingResponse(
        pulled.chunks,
        media_type=pulled.headers.get("content-type") or media,
        headers={
            "Content-Disposition": f'attachment; filename="{name.format(n=ask.patients)}"',
            # The hospital's bytes, never run as a page of ours.
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox; default-src 'none'",
            "Cache-Control": "no-store",
        },
    )
