"""A combined answer as a pandas DataFrame (pandas is imported here, on first use).

One row per count or score of the MeasureReport, long form: ``hospital`` ("all" for the
combined answer, a hospital's DID for its row in a per-hospital breakdown), ``group``,
``population`` (its code), ``stratifier`` and ``stratum`` (empty for the whole group),
``count`` (missing where suppressed or withheld) and ``score`` (a group's or stratum's
``measureScore`` value, when the measure has one). ``frame.attrs`` holds the answer's
``mode``, ``status``, ``total``, ``withheld`` and per-hospital statuses.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = ["hospital", "group", "population", "stratifier", "stratum", "count", "score"]


def _text(concept: object) -> str:
    if isinstance(concept, list):
        return " + ".join(_text(c) for c in concept)
    if not isinstance(concept, dict):
        return ""
    codings = [c for c in concept.get("coding", []) if isinstance(c, dict)]
    if codings:
        return str(codings[0].get("code") or codings[0].get("display") or "")
    return str(concept.get("text") or "")


def _score(item: Mapping[str, Any]) -> float | None:
    score = item.get("measureScore")
    value = score.get("value") if isinstance(score, dict) else None
    return float(value) if isinstance(value, int | float) else None


def _populations(where: dict[str, Any], item: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    populations = [p for p in item.get("population", []) if isinstance(p, dict)]
    for population in populations:
        count = population.get("count")
        yield {
            **where,
            "population": _text(population.get("code")),
            "count": count if isinstance(count, int) else None,
            "score": None,
        }
    score = _score(item)
    if score is not None:
        yield {**where, "population": "measure-score", "count": None, "score": score}


def rows(report: Mapping[str, Any], hospital: str = "all") -> list[dict[str, Any]]:
    """The counts and scores of one MeasureReport, as rows of ``COLUMNS``."""
    out: list[dict[str, Any]] = []
    for index, group in enumerate(report.get("group", [])):
        if not isinstance(group, dict):
            continue
        name = _text(group.get("code")) or str(index)
        base = {"hospital": hospital, "group": name, "stratifier": "", "stratum": ""}
        out += _populations(base, group)
        for stratifier in group.get("stratifier", []):
            if not isinstance(stratifier, dict):
                continue
            label = _text(stratifier.get("code"))
            for stratum in stratifier.get("stratum", []):
                if isinstance(stratum, dict):
                    where = {**base, "stratifier": label, "stratum": _text(stratum.get("value"))}
                    out += _populations(where, stratum)
    return out


def answer_frame(answer: Mapping[str, Any]) -> pd.DataFrame:
    """The management API's answer to ``POST /management/queries`` as a DataFrame."""
    import pandas as pd

    table: list[dict[str, Any]] = []
    report = answer.get("measureReport")
    if isinstance(report, dict):
        table += rows(report)
    for part in answer.get("breakdown") or []:
        if isinstance(part, dict) and isinstance(part.get("measureReport"), dict):
            table += rows(part["measureReport"], str(part.get("did", "")))
    frame = pd.DataFrame(table, columns=COLUMNS)
    frame["count"] = frame["count"].astype("Int64")
    frame["score"] = frame["score"].astype("Float64")
    for key in ("mode", "status", "total", "withheld", "hospitals"):
        frame.attrs[key] = answer.get(key)
    return frame
