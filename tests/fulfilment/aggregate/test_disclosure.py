"""Disclosure control: suppression (primary and secondary), noise, rounding, repeatability, and
attacks on them: a true 7 never shows, margins and overlapping cohorts recover no suppressed
cell, the same query asked again gets the same answer."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from datetime import UTC, date, datetime
from fractions import Fraction
from pathlib import Path
from random import Random
from typing import Any

import orjson
import pytest

from connector.clock import FixedClock
from connector.errors import PhemsError
from connector.fulfilment.aggregate import noise
from connector.fulfilment.aggregate.cells import CellKind, Layout
from connector.fulfilment.aggregate.disclosure import suppressed
from connector.fulfilment.aggregate.fulfilment import AggregateFulfilment
from connector.fulfilment.aggregate.release import release, round_count
from connector.fulfilment.aggregate.request import parse_request
from connector.fulfilment.aggregate.store import MemoryAnswerStore
from connector.ports import FlatViews, FulfilmentRequest
from tests.fulfilment.aggregate.queries import ASTHMA, WEIGHT, Json, age, lab, quantity, query, sex
from tests.fulfilment.aggregate.small import small_hospital

NOW = datetime(2024, 3, 15, 12, 0, tzinfo=UTC)
MEASURES: list[Json] = [
    {"type": "stratify", "by": "sex"},
    {"type": "stratify", "by": "ageBand", "edges": [6, 10]},
    {
        "type": "stratify",
        "by": "code",
        "strata": [sex("female"), lab(WEIGHT, valueFilter=quantity("lt", 22, "kg"))],
    },
    {
        "type": "numeric",
        "column": "observation.value_quantity",
        "criterion": lab(WEIGHT),
        "unit": "kg",
        "bounds": [0, 50],
        "statistics": ["mean", "stddev"],
        "histogram": [22, 27],
    },
]


def parsed(doc: Json) -> Any:
    return parse_request(json.dumps(doc).encode())


def layout_of(doc: Json) -> Layout:
    return parsed(doc).layout  # type: ignore[no-any-return]


# -- suppression rules ------------------------------------------------------------------------


def test_primary_suppression_hides_small_cells_and_zeros_and_their_sums() -> None:
    doc = query([[ASTHMA]], measures=[MEASURES[3]])
    layout = layout_of(doc)  # cohort, n, sum, sumsq, 3 bins
    hidden = suppressed(layout, [59, 7, 140, 2800, 7, 0, 0], 10)
    assert hidden == {1, 2, 3, 4, 5, 6}
    assert suppressed(layout, [59, 59, 1475, 37775, 7, 12, 40], 10) == {4, 5}  # 7 + 12 >= 10


def test_a_lone_hidden_stratum_takes_the_smallest_other_with_it() -> None:
    layout = layout_of(query([[ASTHMA]], measures=[MEASURES[0]]))  # female, male, other, unknown
    assert suppressed(layout, [100, 50, 43, 7, 0], 10) == {3, 4, 2}  # 7 + 0 < 10: "male" too
    assert suppressed(layout, [100, 7, 50, 31, 12], 10) == {1, 4}  # 7 + 12 >= 10
    assert suppressed(layout, [100, 40, 45, 15, 0], 10) == {4, 3}  # a zero alone is hidden too
    assert suppressed(layout, [100, 40, 30, 15, 15], 10) == frozenset()
    assert suppressed(layout, [9, 5, 4, 0, 0], 10) == {0, 1, 2, 3, 4}  # a hidden margin


def _determined(layout: Layout, hidden: frozenset[int]) -> set[int]:
    """Hidden cells an attacker can solve for exactly from the released cells: each partition
    is an equation (margin = sum of members); a hidden cell is determined when its unit vector
    lies in the span of the equations over the hidden cells (exact rational elimination)."""
    unknowns = sorted(hidden)
    index = {c: i for i, c in enumerate(unknowns)}
    rows = []
    for part in layout.partitions:
        row = [Fraction(0)] * len(unknowns)
        if part.margin in index:
            row[index[part.margin]] -= 1
        for m in part.members:
            if m in index:
                row[index[m]] += 1
        if any(row):
            rows.append(row)

    def rank(matrix: list[list[Fraction]]) -> int:
        m = [r[:] for r in matrix]
        r = 0
        for col in range(len(unknowns)):
            pivot = next((i for i in range(r, len(m)) if m[i][col] != 0), None)
            if pivot is None:
                continue
            m[r], m[pivot] = m[pivot], m[r]
            for i in range(len(m)):
                if i != r and m[i][col] != 0:
                    f = m[i][col] / m[r][col]
                    m[i] = [a - f * b for a, b in zip(m[i], m[r], strict=True)]
            r += 1
        return r

    base = rank(rows)
    out = set()
    for c in unknowns:
        unit = [Fraction(1 if i == index[c] else 0) for i in range(len(unknowns))]
        if rank([*rows, unit]) == base:
            out.add(c)
    return out


def test_no_suppressed_cell_is_determined_by_margins_for_random_tables() -> None:
    rng = Random(5)
    layout = layout_of(query([[ASTHMA]], measures=[MEASURES[0], MEASURES[1], MEASURES[3]]))
    n_index = next(i for i, c in enumerate(layout.cells) if c.measure == "m2" and c.label == "")
    checked = 0
    for _ in range(400):
        sexes = [rng.choice([0, 1, 3, 7, 9, 12, 40]) for _ in range(4)]
        total = sum(sexes)
        bands = _split(rng, total, 4)  # <6, 6-9, 10+, unknown
        n = rng.randint(0, total)
        bins = _split(rng, n, 3)
        values: list[float] = [total, *sexes, *bands, n, 25.0 * n, 700.0 * n, *bins]
        assert len(values) == len(layout)
        hidden = suppressed(layout, values, 10)
        assert _determined(layout, hidden) == set()
        for part in layout.partitions:
            group = [m for m in part.members if m in hidden]
            if group and part.margin not in hidden:
                assert len(group) >= 2 and sum(values[m] for m in group) >= 10
        if n_index in hidden:
            assert all(i in hidden for i, c in enumerate(layout.cells) if c.count_cell == n_index)
        checked += bool(hidden)
    assert checked > 100


def _split(rng: Random, total: int, parts: int) -> list[int]:
    cuts = sorted(rng.randint(0, total) for _ in range(parts - 1))
    edges = [0, *cuts, total]
    return [b - a for a, b in zip(edges, edges[1:], strict=False)]


# -- noise ------------------------------------------------------------------------------------


def test_opendp_certifies_the_epsilon_split_over_the_noise_groups() -> None:
    q = parsed(query([[ASTHMA]], measures=MEASURES, epsilon=0.8))
    groups = q.layout.groups
    share = 0.8 / len(groups)
    spent = sum(
        noise.privacy_loss(sensitivity=g.sensitivity, epsilon=share, integer=g.integer)
        for g in groups
    )
    assert spent == pytest.approx(0.8)
    strata = next(g for g in groups if len(g.cells) == 2 and g.integer)  # the two code strata
    assert strata.sensitivity == 2  # a patient may be in both


def test_released_counts_are_noisy_rounded_and_never_negative() -> None:
    q = parsed(query([[ASTHMA]], epsilon=0.1))  # Laplace scale 10
    seen = {release(q, [137.0], reference=NOW.date(), now=NOW).values[0] for _ in range(200)}
    assert all(v is not None and v % 10 == 0 and v >= 0 for v in seen)
    assert len(seen) >= 3 and 140.0 in seen  # noise varies the answer around the truth
    assert round_count(-3.2) == 0 and round_count(14.9) == 10 and round_count(15) == 20


# -- end to end: a true 7 -------------------------------------------------------------------


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> FlatViews:
    return small_hospital(tmp_path_factory.mktemp("small"))


def _request(doc: Json) -> FulfilmentRequest:
    return FulfilmentRequest(
        "agreement-1", "transfer-1", "did:web:user", "small", json.dumps(doc).encode(), None, {}
    )


def _ask(
    fulfilment: AggregateFulfilment, doc: Json, views: FlatViews
) -> tuple[bytes, dict[str, Any]]:
    async def go() -> tuple[bytes, dict[str, Any]]:
        request = _request(doc)
        result = await fulfilment.fulfil(request, fulfilment.facts(request), views)
        return b"".join([c async for c in result.chunks]), dict(result.audit)

    return asyncio.run(go())


SEVEN_QUERIES: list[Json] = [
    query([[ASTHMA], [sex("female")]]),  # the total is 7
    query([[ASTHMA]], measures=MEASURES),  # a stratum, a code stratum, n and a bin are 7
    query([[ASTHMA], [age(quantity("lt", 9))]], measures=[{"type": "stratify", "by": "sex"}]),
    query([[lab(WEIGHT, valueFilter=quantity("lt", 21, "kg"))]], measures=[MEASURES[3]]),
]


def _counts(report: Json) -> list[int | None]:
    found: list[int | None] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "code" in node and ("count" in node or "_count" in node):
                found.append(node.get("count"))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(report)
    return found


def test_a_true_seven_never_appears(small: FlatViews, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fulfilment = AggregateFulfilment(MemoryAnswerStore(), FixedClock(NOW))
    seven = re.compile(rb"(?<![\w.-])7(?![\w.-])")  # 7 alone, not in 29463-7 or 0.7
    for doc in SEVEN_QUERIES:
        body, audit = _ask(fulfilment, doc, small)
        report = orjson.loads(body)
        counts = _counts(report)
        assert None in counts  # something was suppressed
        assert all(c is None or c % 10 == 0 for c in counts)
        assert not seven.search(body), body
        q = parsed(doc)
        assert audit == {  # descriptions only: nothing computed from the data
            "queryDigest": q.digest,
            "dataVersion": small.version,
            "answer": "computed",
            "cells": len(q.layout),
            "minCellSize": 10,
            "epsilon": 0.5,
        }
    assert not seven.search(caplog.text.encode())


def test_the_true_values_are_not_in_the_store(small: FlatViews) -> None:
    store = MemoryAnswerStore()
    fulfilment = AggregateFulfilment(store, FixedClock(NOW))
    _ask(fulfilment, SEVEN_QUERIES[1], small)
    kept = asyncio.run(store.get("small", small.version, parsed(SEVEN_QUERIES[1]).digest))
    assert kept is not None
    counts = [
        v
        for v, c in zip(kept["values"], parsed(SEVEN_QUERIES[1]).layout.cells, strict=True)
        if c.kind is CellKind.COUNT
    ]
    assert all(v is None or v % 10 == 0 for v in counts)


def test_an_engine_error_says_nothing_of_the_data(
    small: FlatViews, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken_dir = tmp_path / "broken"
    broken_dir.mkdir()
    tables = dict(small.tables)
    bad = broken_dir / "observation.parquet"
    bad.write_bytes(b"7 is not parquet, 7 7 7")
    tables["observation"] = bad
    views = FlatViews("small", "broken-1", broken_dir, tables, small.patients)
    fulfilment = AggregateFulfilment(MemoryAnswerStore(), FixedClock(NOW))
    with pytest.raises(PhemsError) as caught:
        _ask(fulfilment, SEVEN_QUERIES[3], views)
    assert "7" not in str(caught.value) and "analytical engine" in str(caught.value)
    assert "7 is not" not in caplog.text


# -- repeatability and attacks -----------------------------------------------------------------


def test_the_same_query_a_hundred_times_gives_one_answer(small: FlatViews) -> None:
    fulfilment = AggregateFulfilment(MemoryAnswerStore(), FixedClock(NOW))
    bodies = {_ask(fulfilment, SEVEN_QUERIES[1], small)[0] for _ in range(100)}
    assert len(bodies) == 1
    # Rewritten (order, displays, duplicates, another purpose): the same query, the same answer.
    doc = json.loads(json.dumps(SEVEN_QUERIES[1]))
    doc["inclusionCriteria"][0] = [ASTHMA, ASTHMA]
    doc["inclusionCriteria"][0][0]["termCodes"][0]["display"] = "Asthma"
    doc["options"] = {"purpose": "another"}
    assert _ask(fulfilment, doc, small)[0] == next(iter(bodies))


def test_margins_do_not_recover_the_suppressed_stratum(small: FlatViews) -> None:
    """Sex strata: female 7, male 40, other 12, unknown 0. The cohort count minus the shown
    strata is the sum of the hidden ones: that sum must hold at least 10 patients."""
    fulfilment = AggregateFulfilment(MemoryAnswerStore(), FixedClock(NOW))
    report = orjson.loads(_ask(fulfilment, query([[ASTHMA]], measures=[MEASURES[0]]), small)[0])
    strata = report["group"][0]["stratifier"][0]["stratum"]
    shown = {s["value"]["text"]: s["population"][0].get("count") for s in strata}
    assert shown["female"] is None and shown["unknown"] is None
    assert shown["other"] is None  # hidden as the complement: female + unknown = 7 < 10
    assert shown["male"] is not None


def test_overlapping_cohorts_that_differ_by_one_criterion(small: FlatViews) -> None:
    """Asthma, and asthma without girls: the difference is the 7 girls. Each answer is noisy
    and rounded to 10, so their difference is a multiple of 10; asking again returns the same
    answers (no averaging of fresh noise)."""
    fulfilment = AggregateFulfilment(MemoryAnswerStore(), FixedClock(NOW))
    everyone = query([[ASTHMA]])
    without_girls = query([[ASTHMA]], [[sex("female")]])
    differences = set()
    for _ in range(20):
        a = orjson.loads(_ask(fulfilment, everyone, small)[0])["group"][0]["population"][0]["count"]
        b = orjson.loads(_ask(fulfilment, without_girls, small)[0])["group"][0]["population"][0][
            "count"
        ]
        differences.add(a - b)
    assert len(differences) == 1 and next(iter(differences)) % 10 == 0


def test_fresh_noise_per_data_version_but_not_per_call(small: FlatViews, tmp_path: Path) -> None:
    store = MemoryAnswerStore()
    fulfilment = AggregateFulfilment(store, FixedClock(NOW))
    doc = query([[ASTHMA]], measures=MEASURES)
    first = _ask(fulfilment, doc, small)
    assert first[1]["answer"] == "computed" and _ask(fulfilment, doc, small)[1]["answer"] == "kept"
    newer = FlatViews(small.dataset_id, "small-2", small.directory, small.tables, small.patients)
    assert _ask(fulfilment, doc, newer)[1]["answer"] == "computed"
    assert asyncio.run(store.forget_other_versions("small", "small-2")) == 1


def test_reference_date_is_the_clock_date(small: FlatViews) -> None:
    fulfilment = AggregateFulfilment(MemoryAnswerStore(), FixedClock(NOW))
    report = orjson.loads(_ask(fulfilment, query([[ASTHMA]]), small)[0])
    assert report["period"] == {"start": "2024-03-15", "end": "2024-03-15"}
    assert date.fromisoformat(report["period"]["start"]) == NOW.date()
