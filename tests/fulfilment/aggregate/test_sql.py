"""The compiled statement: its portable form (``?`` parameters) and the inlined form DuckDB runs
give the same cells; literals are quoted safely."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import duckdb
import pytest

from connector.fulfilment.aggregate.engine import DuckDbEngine
from connector.fulfilment.aggregate.request import parse_request
from connector.fulfilment.aggregate.sql import Compiler, DataProfile
from connector.fulfilment.aggregate.statement import Statement
from connector.fulfilment.views import TABLES
from tests.fulfilment.aggregate.conftest import REFERENCE
from tests.fulfilment.aggregate.queries import (
    ASTHMA,
    OTITIS,
    TEMPERATURE,
    WEIGHT,
    age,
    diagnosis,
    lab,
    quantity,
    query,
    sex,
    when,
)


def test_parameters_and_inlined_literals_agree(sample: Any) -> None:
    _, views = sample
    con = duckdb.connect()
    for table in TABLES:
        con.execute(
            f"CREATE VIEW \"{table}\" AS SELECT * FROM read_parquet('{views.tables[table]}')"
        )
    units = {
        "observation": ("Cel", "[degF]", "[lb_av]", "g", "kg"),
        "observation_component": ("mm[Hg]",),
    }
    measures = [
        {"type": "stratify", "by": "sex"},
        {"type": "stratify", "by": "ageBand"},
        {"type": "stratify", "by": "code", "strata": [OTITIS, sex("male")]},
        {
            "type": "numeric",
            "column": "observation.value_quantity",
            "criterion": lab(WEIGHT),
            "unit": "kg",
            "bounds": [0, 90],
            "statistics": ["mean", "stddev"],
            "histogram": [10, 20],
        },
    ]
    for doc in (
        query([[ASTHMA, diagnosis("http://hl7.org/fhir/sid/icd-10", "J45")]], measures=measures),
        query(
            [
                [
                    lab(
                        TEMPERATURE,
                        valueFilter=quantity("ge", 100.4, "[degF]"),
                        timeRestriction=when("2021-01-01"),
                    )
                ]
            ],
            [[age(quantity("lt", 3))]],
        ),
    ):
        statement = Compiler(REFERENCE, DataProfile(units)).statement(
            parse_request(json.dumps(doc).encode())
        )
        portable = con.execute(statement.text, statement.params).fetchone()
        inlined = con.execute(statement.inline()).fetchone()
        assert portable is not None and inlined is not None
        assert list(portable) == pytest.approx(list(inlined), rel=1e-12)  # float sums: any order


def test_literals_are_quoted() -> None:
    statement = Statement(
        "SELECT ?, ?, ?, ?, ?, 'is ? kept' AS \"odd?\"",
        ["it's", 3, 2.5, date(2024, 3, 1), datetime(2024, 3, 1, 12, 30)],
    )
    assert statement.inline() == (
        "SELECT 'it''s', 3, 2.5, DATE '2024-03-01', TIMESTAMP '2024-03-01 12:30:00', "
        "'is ? kept' AS \"odd?\""
    )
    assert duckdb.connect().execute(statement.inline()).fetchall()[0][0] == "it's"
    with pytest.raises(ValueError):
        Statement("SELECT ?", [float("inf")]).inline()
    with pytest.raises(ValueError, match="fewer parameters"):
        Statement("SELECT ?, ?", [1]).inline()
    with pytest.raises(ValueError, match="more parameters"):
        Statement("SELECT ?", [1, 2]).inline()
    with pytest.raises(TypeError):
        Statement("SELECT ?", [None]).inline()


def test_the_engine_reads_the_data_profile(sample: Any, engine: DuckDbEngine) -> None:
    """Conditions carry SNOMED CT and ICD-10 codings: matched through the coding table;
    Observations one LOINC coding each: matched on their own columns."""
    _, views = sample
    _, profile = engine._connection(views)
    assert "Condition" in profile.multi_coded and "Observation" not in profile.multi_coded
    assert {"kg", "g", "[lb_av]", "Cel", "[degF]"} <= set(profile.units["observation"])
