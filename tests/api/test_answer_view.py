"""An aggregate answer as the catalog UI shows it: the rows of the table and the SVG bar chart,
from a MeasureReport built by the aggregate fulfilment's own report module. A suppressed cell
is said to be suppressed, with no number, in the table and in the chart."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime
from typing import Any

import pytest

from connector.api.answer_view import (
    LABEL_WIDTH,
    PLOT_WIDTH,
    Bar,
    Chart,
    Row,
    bar_chart_svg,
    read_answer,
)
from connector.api.cohort_builder import CohortForm
from connector.errors import UpstreamError
from connector.fulfilment.aggregate.release import Release
from connector.fulfilment.aggregate.report import measure_report
from connector.fulfilment.aggregate.request import parse_request

SVG = "{http://www.w3.org/2000/svg}"
WEIGHT = {
    "type": "numeric",
    "id": "weight",
    "column": "observation.value_quantity",
    "criterion": {
        "context": {"system": "fdpg.mii.cds", "code": "Laboruntersuchung", "display": "Labor"},
        "termCodes": [{"system": "http://loinc.org", "code": "29463-7", "display": "Weight"}],
    },
    "unit": "kg",
    "bounds": [0, 100],
    "statistics": ["count", "mean", "stddev"],
}


def _report(query: dict[str, Any], values: tuple[float | None, ...]) -> dict[str, Any]:
    parsed = parse_request(json.dumps(query).encode())
    release = Release(values, date(2026, 12, 7), datetime(2026, 12, 7, 9, tzinfo=UTC))
    return measure_report(parsed, release)


def test_strata_with_suppressed_cells() -> None:
    query = CohortForm(stratify="sex").ccdl()
    answer = read_answer(_report(query, (120, 60, 50, None, None)))
    assert answer.rows == (
        Row("Cohort", "", 120),
        Row("sex", "female", 60),
        Row("sex", "male", 50),
        Row("sex", "other", None),
        Row("sex", "unknown", None),
    )
    [chart] = answer.charts
    assert chart == Chart(
        "sex", (Bar("female", 60), Bar("male", 50), Bar("other", None), Bar("unknown", None))
    )
    assert (answer.min_cell_size, answer.epsilon, answer.rounding) == (10, 0.5, 10)
    assert not answer.has_scores


def test_a_cohort_without_strata_charts_its_count() -> None:
    answer = read_answer(_report(CohortForm(condition_code="J45").ccdl(), (None,)))
    assert answer.rows == (Row("Cohort", "", None),)
    assert answer.charts == (Chart("Cohort", (Bar("patients", None),)),)


def test_a_numeric_measure_with_a_suppressed_deviation() -> None:
    query = CohortForm().ccdl() | {"measures": [WEIGHT]}
    answer = read_answer(_report(query, (120, 40, 21.5, None)))
    assert answer.rows == (Row("Cohort", "", 120), Row("weight", "", 40, "21.5 kg", "suppressed"))
    assert answer.has_scores


def test_the_chart_draws_shown_counts_to_scale_and_suppressed_ones_as_words() -> None:
    chart = Chart("sex", (Bar("female", 60), Bar("male", 30), Bar("other", None)))
    svg = str(bar_chart_svg(chart))
    root = ET.fromstring(svg)  # well-formed: inline SVG in the page
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    groups = {g.get("data-label"): g for g in root.iter(f"{SVG}g")}
    assert list(groups) == ["female", "male", "other"]
    widths = {k: float(g.find(f"{SVG}rect").get("width", "")) for k, g in groups.items()}
    assert widths["female"] == PLOT_WIDTH and widths["male"] == PLOT_WIDTH / 2
    words = {k: [t.text for t in g.iter(f"{SVG}text")] for k, g in groups.items()}
    assert words["female"] == ["female", "60"] and words["male"] == ["male", "30"]
    # Suppressed: an empty dashed box and the word, no number anywhere in its bar.
    suppressed = groups["other"]
    rect = suppressed.find(f"{SVG}rect")
    assert rect is not None and rect.get("fill") == "none" and rect.get("stroke-dasharray")
    assert words["other"] == ["other", "suppressed"]
    assert not re.search(r"\d", "".join(suppressed.itertext()))
    assert float(rect.get("x", "")) == LABEL_WIDTH + 1


def test_all_suppressed_draws_no_bar_of_any_length() -> None:
    svg = str(bar_chart_svg(Chart("age", (Bar("<1", None), Bar("1-5", None)))))
    root = ET.fromstring(svg)
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert texts == ["<1", "suppressed", "1-5", "suppressed"]
    assert all(r.get("fill") == "none" for r in root.iter(f"{SVG}rect"))


def test_labels_from_the_hospital_are_escaped() -> None:
    svg = str(bar_chart_svg(Chart('<script>x</script>"', (Bar('<img src=x onerror="y">', 3),))))
    assert "<script>" not in svg and "<img" not in svg
    root = ET.fromstring(svg)
    assert root.find(f"{SVG}title") is not None
    assert root.find(f"{SVG}title").text == '<script>x</script>"'  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "report",
    [None, [], {"resourceType": "Bundle"}, "MeasureReport"],
)
def test_anything_but_a_measure_report_is_refused(report: object) -> None:
    with pytest.raises(UpstreamError):
        read_answer(report)


def test_a_count_that_is_not_an_integer_is_not_shown() -> None:
    report = {
        "resourceType": "MeasureReport",
        "group": [{"population": [{"count": "12"}], "stratifier": "nonsense"}],
    }
    answer = read_answer(report)
    assert answer.rows == (Row("Cohort", "", None),)
