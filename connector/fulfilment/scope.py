"""Which part of the hospital's FHIR data a dataset covers: its scope.

Written in the dataset (management API, ``scope``), for example::

    "scope": {
      "resourceTypes": ["Encounter", "Condition", "Observation", "MedicationRequest"],
      "period": {"start": "2019-01-01", "end": "2024-12-31"},
      "group": "asthma-registry"
    }

- ``resourceTypes``: the clinical resource types the dataset includes (Patient always is);
  default: every type the flattened tables hold (``views.RESOURCE_TYPES``).
- ``period``: clinical records dated inside it (both days included; ``start`` or ``end`` may
  be left out); a record without a date is then outside. Only patients with at least one
  record inside the period belong to the dataset.
- ``group``: the id of a FHIR ``Group`` in the source: only its members (``Group.member``,
  not ``inactive``) belong to the dataset.

Statistics, the catalog's temporal and population coverage and every fulfilment are computed
on the scope (the view cache applies it). Resources without a patient reference are never
part of a dataset: opt-outs could not be honoured for them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from connector.errors import BadRequestError
from connector.fulfilment.views import RESOURCE_TYPES

CLINICAL_TYPES = tuple(t for t in RESOURCE_TYPES if t != "Patient")
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


@dataclass(frozen=True)
class DatasetScope:
    resource_types: tuple[str, ...] = CLINICAL_TYPES
    start: dt.date | None = None
    end: dt.date | None = None
    group: str | None = None

    @classmethod
    def parse(cls, data: Any) -> DatasetScope:
        """From the dataset's ``scope`` object (None: everything); a ``BadRequestError``
        naming the bad part otherwise."""
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise BadRequestError("scope must be an object")
        unknown = sorted(set(data) - {"resourceTypes", "period", "group"})
        if unknown:
            raise BadRequestError(
                f"scope: unknown member(s) {', '.join(unknown)}; "
                "use resourceTypes, period and group"
            )
        types = data.get("resourceTypes", list(CLINICAL_TYPES))
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            raise BadRequestError("scope.resourceTypes must be a list of resource type names")
        wrong = [t for t in types if t not in CLINICAL_TYPES and t != "Patient"]
        if wrong:
            raise BadRequestError(
                f"scope.resourceTypes: {', '.join(wrong)} not supported; "
                f"use any of {', '.join(CLINICAL_TYPES)}"
            )
        period = data.get("period", {})
        if not isinstance(period, dict) or set(period) - {"start", "end"}:
            raise BadRequestError("scope.period must be an object with start and/or end")
        start, end = _day(period.get("start"), "start"), _day(period.get("end"), "end")
        if start and end and end < start:
            raise BadRequestError("scope.period: end is before start")
        group = data.get("group")
        if group is not None:
            if not isinstance(group, str):
                raise BadRequestError("scope.group must be a Group id")
            group = group.removeprefix("Group/")
            if not _ID.match(group):
                raise BadRequestError(f"scope.group: {group!r} is not a FHIR id")
        ordered = tuple(t for t in CLINICAL_TYPES if t in types)
        return cls(resource_types=ordered, start=start, end=end, group=group)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"resourceTypes": list(self.resource_types)}
        period = {k: v.isoformat() for k, v in (("start", self.start), ("end", self.end)) if v}
        if period:
            out["period"] = period
        if self.group:
            out["group"] = self.group
        return out

    def digest(self) -> str:
        text = json.dumps(self.as_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _day(value: Any, name: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value) if isinstance(value, str) else _bad(name, value)
    except ValueError:
        return _bad(name, value)


def _bad(name: str, value: Any) -> dt.date:
    raise BadRequestError(f"scope.period.{name}: {value!r} is not a date (YYYY-MM-DD)")
