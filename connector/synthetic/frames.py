"""Synthetic FHIR as pandas DataFrames, one per resource type (the data user's side).

    from connector.synthetic.frames import bundle_frames, ndjson_frames

    frames = bundle_frames(json.load(open("patients.json")))
    frames["Patient"][["id", "gender", "birthDate"]]
    frames["Condition"][["subject.reference", "code.coding.0.code", "onsetDateTime"]]

Pure functions over parsed JSON; pandas is imported when one is called. Each resource becomes
one row with flat columns: nested objects joined by ``.``, list items by their index
(``code.coding.0.system``), so every cell is a string, number, boolean or missing. Rows keep
the order of the input; columns are sorted, with ``id`` first. References are written
``Type/id``, also where the data refer to a resource by ``urn:uuid:<id>`` (a Bundle's
``fullUrl``), so
frames join the same way from a Bundle or NDJSON: ``subject.reference`` with
``"Patient/" + id``. The report a Bundle carries (its ``DocumentReference``) is left out
unless ``include_report``; ``connector.synthetic.client.report_of`` reads it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

REPORT_TYPE = "DocumentReference"


def bundle_frames(
    bundle: Mapping[str, Any], *, include_report: bool = False
) -> dict[str, pd.DataFrame]:
    """A synthetic ``Bundle`` (parsed JSON) as ``{resourceType: DataFrame}``."""
    if bundle.get("resourceType") != "Bundle":
        raise ValueError(f"not a FHIR Bundle (resourceType {bundle.get('resourceType')!r})")
    entries = [e for e in bundle.get("entry") or () if isinstance(e, Mapping) and "resource" in e]
    named = {str(e["fullUrl"]): e["resource"] for e in entries if e.get("fullUrl")}
    return _frames([e["resource"] for e in entries], named, include_report)


def ndjson_frames(
    lines: Iterable[str | bytes], *, include_report: bool = False
) -> dict[str, pd.DataFrame]:
    """FHIR NDJSON (one resource a line; blank lines skipped) as ``{resourceType: DataFrame}``."""
    import json

    return resource_frames(
        (json.loads(line) for line in lines if line.strip()), include_report=include_report
    )


def resource_frames(
    resources: Iterable[Mapping[str, Any]], *, include_report: bool = False
) -> dict[str, pd.DataFrame]:
    """FHIR resources (parsed JSON) as ``{resourceType: DataFrame}``, types in first-seen
    order."""
    return _frames(list(resources), {}, include_report)


def _frames(
    resources: list[Mapping[str, Any]],
    named: Mapping[str, Mapping[str, Any]],
    include_report: bool,
) -> dict[str, pd.DataFrame]:
    import pandas as pd

    local = {f"urn:uuid:{r.get('id')}": r for r in resources} | dict(named)
    rows: dict[str, list[dict[str, Any]]] = {}
    for resource in resources:
        kind = resource.get("resourceType")
        if not isinstance(kind, str):
            raise ValueError("a resource without a resourceType")
        if kind == REPORT_TYPE and not include_report:
            continue
        row: dict[str, Any] = {}
        _flatten(resource, "", row)
        row.pop("resourceType", None)
        for column, value in row.items():
            if (column == "reference" or column.endswith(".reference")) and value in local:
                target = local[value]
                row[column] = f"{target.get('resourceType')}/{target.get('id')}"
        rows.setdefault(kind, []).append(row)
    frames = {}
    for kind, items in rows.items():
        columns = sorted({c for r in items for c in r}, key=lambda c: (c != "id", c))
        frames[kind] = pd.DataFrame.from_records(items, columns=columns)
    return frames


def _flatten(value: Any, prefix: str, into: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), into)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _flatten(item, f"{prefix}.{index}" if prefix else str(index), into)
    else:
        into[prefix] = value
