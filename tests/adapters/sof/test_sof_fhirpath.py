"""FHIRPath as the view runner compiles it: operators, functions, fast paths vs general path."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.sof import ViewDefinitionError, ViewEvaluationError, compile_view

PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "p1",
    "active": True,
    "gender": "female",
    "birthDate": "2015-06-01",
    "name": [
        {"use": "official", "family": "Muster", "given": ["Anna", "Maria"]},
        {"use": "nickname", "given": ["Anni"]},
    ],
    "multipleBirthInteger": 2,
    "managingOrganization": {"reference": "http://example.org/fhir/Organization/o-1/_history/3"},
    "generalPractitioner": [{"reference": "Practitioner/pr.1"}, {"reference": "#contained"}],
    "extension": [
        {"url": "http://example.org/a", "valueCode": "x"},
        {"url": "http://example.org/b", "extension": [{"url": "inner", "valueInteger": 7}]},
    ],
}


def evaluate(path: str, resource: dict[str, Any] = PATIENT) -> list[Any]:
    view = compile_view(
        {
            "resource": resource["resourceType"],
            "select": [{"column": [{"name": "v", "path": path, "collection": True}]}],
        }
    )
    (row,) = view.rows([resource])
    result: list[Any] = row["v"]
    return result


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("1 + 2 * 3", [7]),
        ("(1 + 2) * 3", [9]),
        ("7 div 2", [3]),
        ("7 mod 2", [1]),
        ("7 / 2", [3.5]),
        ("1 / 0", []),
        ("-2 + 5", [3]),
        ("'a' + 'b'", ["ab"]),
        ("'a' & {}", ["a"]),
        ("gender = 'female' and active", [True]),
        ("gender = 'male' or {}", []),
        ("gender = 'male' implies active", [True]),
        ("true xor false", [True]),
        ("'b' > 'a'", [True]),
        ("birthDate < @2016-01-01", [True]),
        ("birthDate = @2015-06-01", [True]),
        ("'Anna' in name.given", [True]),
        ("name.given contains 'Anni'", [True]),
        ("name.given | name.given", ["Anna", "Maria", "Anni"]),
        ("name.given.count()", [3]),
        ("name.where(use = 'nickname').given", ["Anni"]),
        ("name.where(use != 'nickname').family", ["Muster"]),
        ("name.select(given.first())", ["Anna", "Anni"]),
        ("name.given.where($this.startsWith('An'))", ["Anna", "Anni"]),
        ("name.given.last()", ["Anni"]),
        ("name.given.tail().join('-')", ["Maria-Anni"]),
        ("name.given.skip(1).take(1)", ["Maria"]),
        ("name.exists(use = 'official')", [True]),
        ("name.all(given.exists())", [True]),
        ("iif(active, 'yes', 'no')", ["yes"]),
        ("Patient.name.family", ["Muster"]),
        ("Observation.id", []),
        ("%resource.id", ["p1"]),
        ("multipleBirth", [2]),
        ("multipleBirth.ofType(integer)", [2]),
        ("multipleBirth.ofType(boolean)", []),
        ("multipleBirth is integer", [True]),
        ("gender.ofType(string)", ["female"]),
        ("name.given.first().upper()", ["ANNA"]),
        ("extension('http://example.org/a').value.ofType(code)", ["x"]),
        ("extension('http://example.org/b').extension('inner').value", [7]),
        ("managingOrganization.getReferenceKey()", ["o-1"]),
        ("managingOrganization.getReferenceKey(Organization)", ["o-1"]),
        ("managingOrganization.getReferenceKey('Patient')", []),
        ("generalPractitioner.getReferenceKey()", ["pr.1"]),
        ("getResourceKey()", ["p1"]),
        ("birthDate.lowBoundary()", ["2015-06-01"]),
        ("@2016-02.highBoundary()", ["2016-02-29"]),
        ("2.5.lowBoundary()", [2.45]),
        ("name.family.exists() and name.given.empty().not()", [True]),
        ("`gender`", ["female"]),
        ("'a\\'b\\u0041'", ["a'bA"]),
        ("%ucum", ["http://unitsofmeasure.org"]),
    ],
)
def test_expression(path: str, expected: list[Any]) -> None:
    assert evaluate(path) == expected


@pytest.mark.parametrize(
    "path",
    [
        "name.",
        "1 +",
        "name.where(",
        "foo(1)",
        "name.first(1)",
        "%undefined",
        "'open",
        "a ! b",
        "@20x",
        "$index",
        "name.ofType(1)",
    ],
)
def test_invalid_expression_is_a_definition_error(path: str) -> None:
    with pytest.raises(ViewDefinitionError) as info:
        evaluate(path)
    assert info.value.status == 400


def test_comparing_a_collection_is_an_evaluation_error() -> None:
    with pytest.raises(ViewEvaluationError):
        evaluate("name.given > 'A'")


@pytest.mark.parametrize(
    ("path", "resource", "expected"),
    [
        # a list where the fast path expects one object: the general path answers
        ("name.family", {"resourceType": "Patient", "name": [{"family": "A"}]}, "A"),
        # a choice element read without ofType
        ("value", {"resourceType": "Observation", "valueString": "s"}, "s"),
        (
            "value.ofType(Quantity).value",
            {"resourceType": "Observation", "valueQuantity": {"value": 3}},
            3,
        ),
        ("value.ofType(Quantity).value", {"resourceType": "Observation", "valueString": "s"}, None),
        # Identifier.value is a plain element of the same name
        (
            "identifier.value.ofType(string)",
            {"resourceType": "Observation", "identifier": [{"value": "i"}]},
            "i",
        ),
        (
            "subject.getReferenceKey(Patient)",
            {"resourceType": "Observation", "subject": {"reference": "Patient/x"}},
            "x",
        ),
        (
            "subject.getReferenceKey(Patient)",
            {"resourceType": "Observation", "subject": {"reference": "Group/x"}},
            None,
        ),
        (
            "subject.getReferenceKey(Patient)",
            {"resourceType": "Observation", "subject": {"display": "no ref"}},
            None,
        ),
        ("subject.getReferenceKey(Patient)", {"resourceType": "Observation"}, None),
        (
            "code.coding.code",
            {"resourceType": "Observation", "code": {"coding": [{"code": "c"}]}},
            "c",
        ),
    ],
)
def test_scalar_columns_agree_with_the_general_path(
    path: str, resource: dict[str, Any], expected: Any
) -> None:
    scalar = compile_view(
        {
            "resource": resource["resourceType"],
            "select": [{"column": [{"name": "v", "path": path}]}],
        }
    )
    assert [r["v"] for r in scalar.rows([resource])] == [expected]
    assert evaluate(path, resource) == ([] if expected is None else [expected])


def test_where_criteria_fast_and_general_paths_agree() -> None:
    codings = [{"system": "http://loinc.org", "code": "29463-7"}]
    obs = [
        {"resourceType": "Observation", "id": "a", "code": {"coding": codings}},
        {"resourceType": "Observation", "id": "b", "code": {"coding": [{"code": "29463-7"}]}},
        {
            "resourceType": "Observation",
            "id": "c",
            "code": {"coding": [{"system": ["odd", "list"]}]},
        },
        {
            "resourceType": "Observation",
            "id": "d",
            "code": {"coding": [{"system": "http://loinc.org", "code": 5}]},
        },
    ]
    view = compile_view(
        {
            "resource": "Observation",
            "where": [{"path": "code.coding.where(system = %loinc and code = '29463-7').exists()"}],
            "select": [{"column": [{"name": "id", "path": "id"}]}],
        }
    )
    assert [r["id"] for r in view.rows(obs)] == ["a"]
