"""The integer vector of secure aggregation: the same layout at every hospital, vectors that add
up to the vector of all patients together, a MeasureReport from noisy totals."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from connector.clock import FixedClock
from connector.fulfilment.aggregate import noise
from connector.fulfilment.aggregate.cells import FIXED_POINT, CellKind
from connector.fulfilment.aggregate.fulfilment import AggregateFulfilment
from connector.fulfilment.aggregate.request import parse_request
from connector.fulfilment.aggregate.secure import (
    noise_plan,
    report_from_totals,
    true_vector,
    vector_cells,
)
from connector.fulfilment.aggregate.store import MemoryAnswerStore
from connector.ports import FlatViews
from tests.fulfilment.aggregate.conftest import REFERENCE
from tests.fulfilment.aggregate.data import Resources
from tests.fulfilment.aggregate.queries import ASTHMA, OTITIS, WEIGHT, lab, query
from tests.fulfilment.flat_views import build_flat_views

NOW = datetime(2024, 3, 15, 12, 0, tzinfo=UTC)
DOC = query(
    [[ASTHMA, OTITIS]],
    measures=[
        {"type": "stratify", "by": "sex"},
        {"type": "stratify", "by": "ageBand"},
        {"type": "numeric", "column": "observation.value_quantity", "criterion": lab(WEIGHT),
         "unit": "kg", "bounds": [0, 80], "statistics": ["mean", "stddev"], "histogram": [15, 30]},
    ],
)  # fmt: skip


def _split(resources: Resources, parts: int) -> list[Resources]:
    home = {p["id"]: i % parts for i, p in enumerate(resources["Patient"])}
    out: list[Resources] = [{} for _ in range(parts)]
    for rtype, items in resources.items():
        for r in items:
            pid = r["id"] if rtype == "Patient" else r.get("subject", {}).get("reference", "/")
            part = home.get(pid.split("/")[-1])
            if part is not None:
                out[part].setdefault(rtype, []).append(r)
    return out


@pytest.fixture(scope="module")
def hospitals(sample: Any, tmp_path_factory: pytest.TempPathFactory) -> list[FlatViews]:
    resources, _ = sample
    return [
        build_flat_views(part, tmp_path_factory.mktemp(f"site{i}"), dataset_id=f"site{i}")
        for i, part in enumerate(_split(resources, 3))
    ]


async def test_vectors_of_three_hospitals_add_up_to_all_patients(
    sample: Any, hospitals: list[FlatViews]
) -> None:
    _, everyone = sample
    q = parse_request(json.dumps(DOC).encode())
    fulfilment = AggregateFulfilment(MemoryAnswerStore(), FixedClock(NOW))
    parts = [await true_vector(fulfilment, q, views, REFERENCE) for views in hospitals]
    whole = await true_vector(fulfilment, q, everyone, REFERENCE)
    assert all(len(p.values) == len(q.layout) and p.digest == q.digest for p in parts)
    summed = [sum(column) for column in zip(*(p.values for p in parts), strict=True)]
    kinds = [c.kind for c in vector_cells(q)]
    for got, want, kind in zip(summed, whole.values, kinds, strict=True):
        # fixed point rounds each hospital's sum: at most half a unit off per hospital
        assert abs(got - want) <= (0 if kind is CellKind.COUNT else 2)
    assert whole.values[0] > 0


def test_cells_and_noise_plan() -> None:
    q = parse_request(json.dumps(DOC).encode())
    cells = vector_cells(q)
    assert cells[0].label == "cohort" and cells[1].label == "m0/female"
    total = next(c for c in cells if c.label == "m2/sum")
    assert total.kind is CellKind.SUM and total.bound == 80 * FIXED_POINT
    plan = noise_plan(q)
    assert sum(share.epsilon for share in plan) == pytest.approx(q.options.epsilon)
    assert sorted(i for share in plan for i in share.cells) == list(range(len(q.layout)))
    squares = next(share for share in plan if cells[share.cells[0]].kind is CellKind.SUMSQ)
    assert squares.sensitivity == 80 * 80 * FIXED_POINT and not squares.integer


async def test_a_report_from_noisy_totals(sample: Any) -> None:
    _, everyone = sample
    q = parse_request(json.dumps(DOC).encode())
    fulfilment = AggregateFulfilment(MemoryAnswerStore(), FixedClock(NOW))
    totals = list((await true_vector(fulfilment, q, everyone, REFERENCE)).values)
    for share in noise_plan(q):  # one party's full noise, as a coordinator of one would add
        drawn = noise.laplace(
            [totals[i] for i in share.cells],
            sensitivity=share.sensitivity,
            epsilon=share.epsilon,
            integer=share.integer,
        )
        for i, v in zip(share.cells, drawn, strict=True):
            totals[i] = round(v)
    report = report_from_totals(q, totals, reference=REFERENCE, now=NOW)
    count = report["group"][0]["population"][0]["count"]
    assert count % 10 == 0 and abs(count - totals[0]) <= 5
    with pytest.raises(ValueError, match="expected"):
        report_from_totals(q, totals[:-1], reference=REFERENCE, now=NOW)


def test_suppression_applies_to_the_totals() -> None:
    q = parse_request(
        json.dumps(query([[ASTHMA]], measures=[{"type": "stratify", "by": "sex"}])).encode()
    )

    def shown(totals: list[int]) -> list[int | None]:
        report = report_from_totals(q, totals, reference=REFERENCE, now=NOW)
        return [
            s["population"][0].get("count") for s in report["group"][0]["stratifier"][0]["stratum"]
        ]

    assert shown([107, 60, 37, 7, 3]) == [60, 40, None, None]
    assert shown([104, 60, 37, 7, 0]) == [60, None, None, None]  # 7 + 0 < 10: a complement
