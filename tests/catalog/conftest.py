"""Fixtures for catalog tests: the example dataset and variants of it."""

from __future__ import annotations

import datetime as dt

import pytest

from catalog.codes import CodingSystem, HealthCategory
from catalog.examples import example_catalog, example_dataset
from catalog.model import Catalog, Dataset, OutputType

FIXED_MODIFIED = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def dataset() -> Dataset:
    return example_dataset(modified=FIXED_MODIFIED)


@pytest.fixture
def catalog(dataset: Dataset) -> Catalog:
    return example_catalog((dataset,))


def variant(base: Dataset, n: int, **update: object) -> Dataset:
    """A distinct copy of `base` (own IRI and identifier) with fields replaced."""
    ident = f"{base.identifier}-{n}"
    iri = base.iri.rsplit("/", 1)[0] + "/" + ident
    fields: dict[str, object] = {"iri": iri, "identifier": ident, "policies": ()}
    fields["distributions"] = tuple(
        d.model_copy(update={"iri": f"{iri}/distributions/{d.output_type.value}"})
        for d in base.distributions
    )
    fields.update(update)
    return base.model_copy(update=fields)


@pytest.fixture
def several(dataset: Dataset) -> list[Dataset]:
    """Five datasets differing in category, ages, coding, hospital and outputs."""
    synthetic_only = tuple(
        d for d in dataset.distributions if d.output_type == OutputType.SYNTHETIC
    )
    other = dataset.publisher.model_copy(
        update={
            "name": "Hospital Sant Joan de Deu (example)",
            "iri": "https://sjd.example/#hospital",
        }
    )
    return [
        dataset,
        variant(
            dataset,
            1,
            title="Neonatal intensive care registry",
            keywords=("neonatal", "NICU"),
            health_categories=(HealthCategory.MRMR,),
            min_typical_age=0,
            max_typical_age=0,
            coding_systems=(CodingSystem.ICD_10,),
            distributions=synthetic_only,
        ),
        variant(
            dataset,
            2,
            title="Paediatric oncology cohort",
            keywords=("oncology",),
            health_categories=(HealthCategory.EHRS, HealthCategory.HGPD),
            min_typical_age=2,
            max_typical_age=17,
            coding_systems=(CodingSystem.ICD_O, CodingSystem.SNOMED_CT),
            publisher=other,
        ),
        variant(
            dataset,
            3,
            title="Adolescent diabetes outpatients",
            keywords=("diabetes", "HbA1c"),
            min_typical_age=12,
            max_typical_age=17,
            coding_systems=(CodingSystem.LOINC,),
            publisher=other,
        ),
        variant(
            dataset,
            4,
            title="Rare disease genetics",
            keywords=("rare disease",),
            health_categories=(HealthCategory.HGPD,),
            min_typical_age=None,
            max_typical_age=None,
            coding_systems=(CodingSystem.ORPHACODE, CodingSystem.HPO),
        ),
    ]
