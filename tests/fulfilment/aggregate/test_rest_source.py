"""The same semantics when the flattened tables come from a real FHIR server: generated children
(varied) loaded into sekmet-fhir, read back through ``FhirRestSource``, flattened by the views,
queried; the answers equal the brute-force evaluation over the files that were loaded."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from adapters.fhir_rest import FhirRestSource
from connector.fulfilment.aggregate.engine import DuckDbEngine
from connector.fulfilment.views import RESOURCE_TYPES
from connector.ports import FlatViews
from connector.sampledata import generate
from tests.adapters.fhir.sekmet import SekmetServer, ensure_sekmet
from tests.conftest import free_port
from tests.fulfilment.aggregate.data import Resources, varied
from tests.fulfilment.aggregate.queries import (
    ACT,
    ASTHMA,
    ATC,
    OTITIS,
    SNOMED,
    SYSTOLIC,
    TEMPERATURE,
    WEIGHT,
    age,
    attribute,
    crit,
    diagnosis,
    lab,
    qrange,
    quantity,
    query,
    sex,
    tc,
    when,
)
from tests.fulfilment.aggregate.test_semantics import check
from tests.fulfilment.flat_views import build_flat_views, load_ndjson


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Resources:
    raw = tmp_path_factory.mktemp("rest-raw")
    generate(raw, patients=80, seed=9, profile="general")
    return varied(load_ndjson(raw))


@pytest.fixture(scope="module")
def sekmet(loaded: Resources, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SekmetServer]:
    files = tmp_path_factory.mktemp("rest-load")
    for rtype, items in loaded.items():
        (files / f"{rtype}.000.ndjson").write_bytes(b"\n".join(orjson.dumps(r) for r in items))
    server = SekmetServer(ensure_sekmet(), tmp_path_factory.mktemp("sekmet-agg"), free_port())
    try:
        server.start()
        server.load_ndjson(files)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def over_rest(
    loaded: Resources, sekmet: SekmetServer, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Resources, FlatViews]:
    async def read() -> Resources:
        source = FhirRestSource(sekmet.base_url, page_size=200)
        try:
            return {
                rtype: [r async for r in source.search(rtype)]
                for rtype in ("Patient", *RESOURCE_TYPES)
            }
        finally:
            await source.aclose()

    fetched = asyncio.run(read())
    assert len(fetched["Patient"]) == len(loaded["Patient"])
    assert len(fetched["Observation"]) == len(loaded["Observation"])
    views = build_flat_views(fetched, tmp_path_factory.mktemp("rest-views"), version="rest-1")
    return loaded, views  # the brute force reads the files that were loaded


QUERIES = [
    query([[ASTHMA, OTITIS]], [[sex("female")]]),
    query(
        [
            [
                diagnosis(
                    SNOMED,
                    "65363002",
                    attributeFilters=[attribute("severity", tc(SNOMED, "24484000"))],
                )
            ]
        ]
    ),
    query([[lab(WEIGHT, valueFilter=qrange(10000, 25000, "g"))], [age(quantity("lt", 10))]]),
    query(
        [
            [
                lab(
                    TEMPERATURE,
                    valueFilter=quantity("ge", 100.4, "[degF]"),
                    timeRestriction=when("2022-01-01"),
                )
            ]
        ]
    ),
    query([[lab(SYSTOLIC, valueFilter=quantity("lt", 14, "kPa"))]]),
    query([[crit("Fall", tc(ACT, "EMER"), timeRestriction=when(before="2023-06-30"))]]),
    query([[crit("Medikamentenverabreichung", tc(ATC, "J01"))]]),
    query(
        [[age(quantity("ge", 0))]],
        measures=[
            {"type": "stratify", "by": "sex"},
            {"type": "stratify", "by": "ageBand"},
            {
                "type": "numeric",
                "column": "observation.value_quantity",
                "criterion": lab(WEIGHT),
                "unit": "kg",
                "bounds": [0, 90],
                "statistics": ["mean", "stddev"],
                "histogram": [15],
            },
        ],
    ),
]


@pytest.mark.parametrize("index", range(len(QUERIES)))
def test_queries_over_the_rest_source(
    over_rest: tuple[Resources, FlatViews], engine: DuckDbEngine, index: int
) -> None:
    check(over_rest, engine, json.loads(json.dumps(QUERIES[index])))


def test_the_rest_tables_are_not_empty(over_rest: tuple[Resources, FlatViews], engine: Any) -> None:
    cells = check(over_rest, engine, QUERIES[-1])
    assert cells[0] > 60 and cells[-5] > 40  # patients, and those with a weight (n)
