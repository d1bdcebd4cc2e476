"""An aggregate answer (a FHIR ``MeasureReport``, docs/aggregate-queries.md) for people: the rows
of a table and one bar chart per stratifier, drawn as inline SVG on the server (no script, no
image fetched: the catalog pages' CSP allows neither).

A suppressed count (``_count`` with the data-absent-reason ``masked``, no ``count``) is a row
and a bar that say "suppressed", never a number: the MeasureReport carries none to show, and a
population without an integer count is shown the same way. The report comes from another
connector: every label is escaped, and only counts, means and deviations are read from it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from markupsafe import Markup, escape

from connector.errors import UpstreamError

STDDEV: Final = "https://w3id.org/phems/fhir/StructureDefinition/stddev"
DISCLOSURE: Final = "https://w3id.org/phems/fhir/StructureDefinition/disclosure-control"
SUPPRESSED: Final = "suppressed"


@dataclass(frozen=True)
class Row:
    measure: str  # "Cohort", a stratifier's or a numeric measure's id
    stratum: str  # "" for the whole group
    patients: int | None  # None: suppressed
    mean: str = ""  # "" when the measure has none; "suppressed"; or the value with its unit
    stddev: str = ""


@dataclass(frozen=True)
class Bar:
    label: str
    value: int | None  # None: suppressed


@dataclass(frozen=True)
class Chart:
    title: str
    bars: tuple[Bar, ...]

    def svg(self) -> Markup:
        return bar_chart_svg(self)


@dataclass(frozen=True)
class Answer:
    rows: tuple[Row, ...]
    charts: tuple[Chart, ...]
    min_cell_size: int | None
    epsilon: float | None
    rounding: int | None

    @property
    def has_scores(self) -> bool:
        return any(r.mean or r.stddev for r in self.rows)


def _masked(element: object) -> bool:
    if not isinstance(element, dict):
        return False
    return any(
        isinstance(e, dict) and e.get("valueCode") == "masked" for e in element.get("extension", [])
    )


def _count(population: Mapping[str, Any]) -> int | None:
    count = population.get("count")
    if isinstance(count, int) and not isinstance(count, bool):
        return count
    return None  # masked, or absent: nothing to show either way


def _text(concept: object) -> str:
    if not isinstance(concept, dict):
        return ""
    text = concept.get("text")
    if isinstance(text, str) and text:
        return text
    codings = [c for c in concept.get("coding", []) if isinstance(c, dict)]
    if codings:
        return str(codings[0].get("display") or codings[0].get("code") or "")
    return ""


def _code_text(code: object) -> str:
    if isinstance(code, list):
        return " + ".join(_text(c) for c in code)
    return _text(code)


def _quantity(q: object) -> str:
    if not isinstance(q, dict):
        return ""
    if _masked(q):
        return SUPPRESSED
    value = q.get("value")
    if not isinstance(value, int | float) or isinstance(value, bool):
        return ""
    unit = q.get("unit") or q.get("code") or ""
    return f"{value:g} {unit}".strip()


def _populations(item: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    return [p for p in item.get("population", []) if isinstance(p, dict)][:1]


def _stratifiers(group: Mapping[str, Any]) -> Iterator[tuple[str, Sequence[Mapping[str, Any]]]]:
    for stratifier in group.get("stratifier", []):
        if isinstance(stratifier, dict):
            strata = [s for s in stratifier.get("stratum", []) if isinstance(s, dict)]
            yield _code_text(stratifier.get("code")) or "strata", strata


def read_answer(report: object) -> Answer:
    """The table rows and charts of a MeasureReport; ``UpstreamError`` if it is none."""
    if not isinstance(report, dict) or report.get("resourceType") != "MeasureReport":
        raise UpstreamError("the hospital's answer is not a FHIR MeasureReport")
    rows: list[Row] = []
    charts: list[Chart] = []
    for index, group in enumerate(g for g in report.get("group", []) if isinstance(g, dict)):
        name = "Cohort" if index == 0 else _text(group.get("code")) or f"group {index}"
        mean, stddev = _quantity(group.get("measureScore")), ""
        for e in group.get("extension", []):
            if isinstance(e, dict) and e.get("url") == STDDEV:
                stddev = _quantity(e.get("valueQuantity"))
        for p in _populations(group):
            rows.append(Row(name, "", _count(p), mean, stddev))
        for label, strata in _stratifiers(group):
            measure = label if index == 0 else f"{name}: {label}"
            bars = []
            for stratum in strata:
                value = _text(stratum.get("value")) or "?"
                for p in _populations(stratum):
                    rows.append(Row(measure, value, _count(p)))
                    bars.append(Bar(value, _count(p)))
            charts.append(Chart(measure, tuple(bars)))
    if not charts and rows:
        charts.append(Chart("Cohort", (Bar("patients", rows[0].patients),)))
    control = _disclosure(report)
    return Answer(
        tuple(rows),
        tuple(charts),
        _int(control.get("minCellSize")),
        _float(control.get("epsilon")),
        _int(control.get("rounding")),
    )


def _disclosure(report: Mapping[str, Any]) -> dict[str, object]:
    for e in report.get("extension", []):
        if isinstance(e, dict) and e.get("url") == DISCLOSURE:
            return {
                str(part.get("url")): next(
                    (v for k, v in part.items() if k.startswith("value")), None
                )
                for part in e.get("extension", [])
                if isinstance(part, dict)
            }
    return {}


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


# -- the chart -------------------------------------------------------------------------------

LABEL_WIDTH: Final = 150
PLOT_WIDTH: Final = 330
VALUE_WIDTH: Final = 90
ROW_HEIGHT: Final = 30
BAR_HEIGHT: Final = 20
TOP: Final = 8
COLOUR: Final = "#0b5cad"
MUTED: Final = "#57606a"


def bar_chart_svg(chart: Chart) -> Markup:
    """A horizontal bar chart as inline SVG: one bar per stratum, scaled to the largest shown
    count; a suppressed stratum is an empty dashed box labelled "suppressed"."""
    width = LABEL_WIDTH + PLOT_WIDTH + VALUE_WIDTH
    height = TOP * 2 + ROW_HEIGHT * max(len(chart.bars), 1)
    largest = max((b.value for b in chart.bars if b.value is not None), default=0) or 1
    title = escape(chart.title)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'aria-label="Bar chart: {title}" data-testid="chart">',
        f"<title>{title}</title>",
        f'<line x1="{LABEL_WIDTH}" y1="{TOP - 4}" x2="{LABEL_WIDTH}" '
        f'y2="{height - TOP + 4}" stroke="{MUTED}" stroke-width="1"/>',
    ]
    for i, bar in enumerate(chart.bars):
        y = TOP + i * ROW_HEIGHT + (ROW_HEIGHT - BAR_HEIGHT) // 2
        middle = y + BAR_HEIGHT // 2 + 5
        label = escape(bar.label)
        parts.append(f'<g class="bar" data-label="{label}">')
        parts.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{middle}" text-anchor="end" font-size="14" '
            f'fill="#1b1f24">{label}</text>'
        )
        if bar.value is None:
            parts.append(
                f"<title>{label}: suppressed (fewer patients than the smallest number "
                f"shown, or hiding one that is)</title>"
            )
            parts.append(
                f'<rect x="{LABEL_WIDTH + 1}" y="{y}" width="{PLOT_WIDTH // 4}" '
                f'height="{BAR_HEIGHT}" fill="none" stroke="{MUTED}" stroke-dasharray="4 3"/>'
            )
            parts.append(
                f'<text x="{LABEL_WIDTH + PLOT_WIDTH // 4 + 8}" y="{middle}" font-size="13" '
                f'font-style="italic" fill="{MUTED}">{SUPPRESSED}</text>'
            )
        else:
            length = max(round(PLOT_WIDTH * bar.value / largest), 1 if bar.value else 0)
            parts.append(f"<title>{label}: {bar.value} patients</title>")
            parts.append(
                f'<rect x="{LABEL_WIDTH + 1}" y="{y}" width="{length}" height="{BAR_HEIGHT}" '
                f'fill="{COLOUR}"/>'
            )
            parts.append(
                f'<text x="{LABEL_WIDTH + length + 8}" y="{middle}" font-size="14" '
                f'fill="#1b1f24">{bar.value}</text>'
            )
        parts.append("</g>")
    parts.append("</svg>")
    return Markup("".join(parts))
