"""The catalog UI's synthetic request: the form read, checked, and sent as the synthetic
fulfilment's request body; refusals in words fit for a request (not a query)."""

from __future__ import annotations

import json

import pytest

from connector.api.query_run import QueryFailure
from connector.api.synthetic_pull import MAX_PATIENTS, SYNTHETIC_HEADLINES, SyntheticAsk


def test_patients_as_a_bundle() -> None:
    ask = SyntheticAsk.from_fields({"patients": " 20 ", "part": "data", "purpose": "research"})
    assert json.loads(ask.body()) == {
        "patients": 20,
        "part": "data",
        "format": "bundle",
        "purpose": "research",
    }


def test_the_report_page() -> None:
    ask = SyntheticAsk.from_fields({"patients": "100", "part": "report.html"})
    assert json.loads(ask.body()) == {"patients": 100, "part": "report.html"}


@pytest.mark.parametrize(
    "fields",
    [
        {"patients": ""},
        {"patients": "0"},
        {"patients": "-3"},
        {"patients": "2.5"},
        {"patients": str(MAX_PATIENTS + 1)},
        {"patients": "10", "part": "report"},
    ],
)
def test_a_bad_form(fields: dict[str, str]) -> None:
    with pytest.raises(QueryFailure) as caught:
        SyntheticAsk.from_fields(fields)
    assert caught.value.status == 400 and caught.value.title == "The form has a mistake"


def test_refusals_speak_of_a_request() -> None:
    refused = QueryFailure.answered(403, "at most 100 patients", headlines=SYNTHETIC_HEADLINES)
    assert refused.title == "The agreement's conditions do not permit this request"
    busy = QueryFailure.answered(
        503, "fitting", {"retry-after": "12"}, headlines=SYNTHETIC_HEADLINES
    )
    assert busy.title == "The hospital is preparing its data"
    assert busy.hint.endswith("nothing was spent. Try again in 12 seconds.")
