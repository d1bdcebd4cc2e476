"""The view runner's API: validation errors, rows, DataFrames, async sources, compile once."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

import pandas as pd
import pytest

import adapters.sof.parser
from adapters.sof import Column, ViewDefinitionError, ViewEvaluationError, compile_view
from connector.errors import BadRequestError

RESOURCES: list[dict[str, Any]] = [
    {
        "resourceType": "Patient",
        "id": "a",
        "active": True,
        "multipleBirthInteger": 2,
        "name": [{"family": "X", "given": ["G1", "G2"]}],
    },
    {"resourceType": "Patient", "id": "b"},
    {"resourceType": "Observation", "id": "o", "valueQuantity": {"value": 1.5}},
]
VIEW: dict[str, Any] = {
    "resourceType": "ViewDefinition",
    "resource": "Patient",
    "select": [
        {
            "column": [
                {"name": "id", "path": "getResourceKey()", "type": "id"},
                {"name": "active", "path": "active", "type": "boolean"},
                {"name": "births", "path": "multipleBirth.ofType(integer)", "type": "integer"},
                {"name": "given", "path": "name.given", "type": "string", "collection": True},
                {"name": "weight", "path": "1.5", "type": "decimal"},
            ]
        },
        {"forEachOrNull": "name", "column": [{"name": "family", "path": "family"}]},
    ],
}


def test_columns_and_rows_in_view_order() -> None:
    view = compile_view(VIEW)
    assert view.resource == "Patient"
    assert [c.name for c in view.columns] == ["id", "active", "births", "given", "weight", "family"]
    assert view.columns[3] == Column("given", "string", True, "name.given")
    assert list(view.rows(RESOURCES)) == [
        {
            "id": "a",
            "active": True,
            "births": 2,
            "given": ["G1", "G2"],
            "weight": 1.5,
            "family": "X",
        },
        {"id": "b", "active": None, "births": None, "given": [], "weight": 1.5, "family": None},
    ]


def test_frame_dtypes_follow_the_fhir_types() -> None:
    frame = compile_view(VIEW).to_frame(RESOURCES)
    assert list(frame.columns) == ["id", "active", "births", "given", "weight", "family"]
    assert str(frame["id"].dtype) == "string"
    assert str(frame["active"].dtype) == "boolean"
    assert str(frame["births"].dtype) == "Int64"
    assert str(frame["weight"].dtype) == "Float64"
    assert frame["given"].dtype == object
    assert frame["births"].isna().tolist() == [False, True]
    assert frame["given"].tolist() == [["G1", "G2"], []]


def test_empty_frame_keeps_columns_and_dtypes() -> None:
    frame = compile_view(VIEW).to_frame([])
    assert frame.shape == (0, 6)
    assert str(frame["births"].dtype) == "Int64"


def test_values_that_do_not_fit_the_declared_type_stay_objects() -> None:
    view = compile_view(
        {
            "resource": "Patient",
            "select": [{"column": [{"name": "n", "path": "id", "type": "integer"}]}],
        }
    )
    frame = view.to_frame([{"resourceType": "Patient", "id": "not-a-number"}])
    assert frame["n"].tolist() == ["not-a-number"]


async def _stream(items: Iterable[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    for item in items:
        yield item


async def test_async_sources_give_the_same_result() -> None:
    view = compile_view(VIEW)
    rows = [row async for row in view.arows(_stream(RESOURCES))]
    assert rows == list(view.rows(RESOURCES))
    frame = await view.ato_frame(_stream(RESOURCES))
    pd.testing.assert_frame_equal(frame, view.to_frame(RESOURCES))


def test_views_are_compiled_once(monkeypatch: pytest.MonkeyPatch) -> None:
    view = compile_view(VIEW)

    def no_parsing(src: str) -> Any:
        raise AssertionError(f"FHIRPath {src!r} tokenized while running a compiled view")

    monkeypatch.setattr(adapters.sof.parser, "tokenize", no_parsing)
    assert len(view.to_frame(RESOURCES * 50)) == 100
    with pytest.raises(AssertionError):
        compile_view(VIEW)


def _with_select(select: list[Any], **extra: Any) -> dict[str, Any]:
    return {"resource": "Patient", "select": select, **extra}


ID = {"name": "id", "path": "id"}


@pytest.mark.parametrize(
    ("view", "message"),
    [
        ([], "must be an object"),
        ({"select": [{"column": [ID]}]}, "'resource' is required"),
        ({"resource": "patient", "select": [{"column": [ID]}]}, "not a FHIR resource type"),
        ({"resource": "Patient"}, "'select' is required"),
        (_with_select([]), "must not be empty"),
        (_with_select([{"column": [{"name": "1x", "path": "id"}]}]), "not a valid column name"),
        (_with_select([{"column": [ID, ID]}]), "already defined"),
        (_with_select([{"column": [ID]}, {"column": [ID]}]), "already defined"),
        (_with_select([{"column": [{"name": "id"}]}]), "select[0].column[0].path"),
        (_with_select([{"forEach": "name", "forEachOrNull": "name"}]), "only one of"),
        (_with_select([{"forEach": 1}]), "select[0].forEach"),
        (_with_select([{"colunm": [ID]}]), "unknown properties"),
        (_with_select([{"repeat": []}]), "must not be empty"),
        (_with_select([{"column": [{**ID, "collection": "yes"}]}]), "must be a boolean"),
        (_with_select([{"column": [{"name": "id", "path": "name.("}]}]), "FHIRPath"),
        (_with_select([{"column": [ID]}], constant=[{"name": "c"}]), "exactly one value[x]"),
        (
            _with_select([{"column": [ID]}], constant=[{"name": "c", "valueInteger": "1"}]),
            "JSON type",
        ),
        (_with_select([{"column": [ID]}], constant=[{"name": "c", "valueFoo": 1}]), "allowed"),
        (_with_select([{"column": [ID]}], where=[{"path": 3}]), "non-empty string"),
        (
            _with_select(
                [{"unionAll": [{"column": [ID]}, {"column": [{"name": "other", "path": "id"}]}]}]
            ),
            "same columns",
        ),
        (
            _with_select(
                [
                    {
                        "unionAll": [
                            {"column": [{**ID, "type": "id"}]},
                            {"column": [{**ID, "type": "integer"}]},
                        ]
                    }
                ]
            ),
            "differs in type",
        ),
    ],
)
def test_invalid_views_are_refused_with_a_clear_error(view: Any, message: str) -> None:
    with pytest.raises(ViewDefinitionError) as info:
        compile_view(view)
    assert message in str(info.value)
    assert isinstance(info.value, BadRequestError)
    assert info.value.status == 400


def test_several_values_in_a_single_column_is_an_evaluation_error() -> None:
    view = compile_view(_with_select([{"column": [{"name": "g", "path": "name.given"}]}]))
    with pytest.raises(ViewEvaluationError, match="not a collection"):
        list(view.rows(RESOURCES))


def test_non_boolean_where_is_an_evaluation_error() -> None:
    view = compile_view(_with_select([{"column": [ID]}], where=[{"path": "name.family"}]))
    with pytest.raises(ViewEvaluationError, match="not a boolean"):
        list(view.rows(RESOURCES))


def test_row_index_counts_items_of_each_iteration() -> None:
    view = compile_view(
        _with_select(
            [
                {"column": [ID]},
                {"forEach": "name.given", "column": [{"name": "i", "path": "%rowIndex"}]},
            ]
        )
    )
    assert [(r["id"], r["i"]) for r in view.rows(RESOURCES)] == [("a", 0), ("a", 1)]
    assert view.columns[1].type == "integer"


@pytest.mark.parametrize("path", ["1", "0", "'true'", "active | active.not()"])
def test_where_must_be_a_single_boolean(path: str) -> None:
    view = compile_view(_with_select([{"column": [ID]}], where=[{"path": path}]))
    with pytest.raises(ViewEvaluationError, match="not a boolean"):
        list(view.rows(RESOURCES))
    two = compile_view(_with_select([{"column": [ID]}], where=[{"path": "true"}, {"path": path}]))
    with pytest.raises(ViewEvaluationError, match="not a boolean"):
        list(two.rows(RESOURCES))
