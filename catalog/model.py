"""Typed model of a HealthDCAT-AP (Release 8, NON_PUBLIC) catalog.

Plain pydantic models; `catalog.rdf` turns them into rdflib graphs and back. Coded values are
enums (`HealthCategory`, `CodingSystem`) or authority IRIs from `catalog.codes`, so an unknown
code cannot be built from Python. Statistics fields hold values already made safe by
`catalog.statistics` (never raw counts).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from catalog.codes import (
    EHDS_REGULATION,
    FHIR_STANDARD,
    CodingSystem,
    HealthCategory,
    eu,
    hdeu,
)
from catalog.formats import DSP_FORMATS, OutputType


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ContactPoint(_Model):
    """A contact: served as `vcard:Kind` for datasets, `cv:ContactPoint` for agents."""

    email: str | None = None
    url: str | None = None
    telephone: str | None = None


class Agent(_Model):
    """Publisher, HDAB or custodian (`foaf:Agent` with exactly one `cv:contactPoint`)."""

    iri: str | None = None
    name: str
    type: str = str(hdeu("publisher-type/healthcare-providers"))
    contact: ContactPoint


class Column(_Model):
    """One variable of the dataset (a SQL-on-FHIR view column) as a `csvw:Column`."""

    name: str
    datatype: str = "string"
    description: str
    title: str | None = None


class DataService(_Model):
    """The connector's DSP endpoint serving the distributions."""

    iri: str
    title: str
    endpoint_url: str
    endpoint_description: str | None = None


class Distribution(_Model):
    iri: str
    title: str
    description: str
    output_type: OutputType
    access_url: str
    format: str = str(eu("file-type/JSON"))
    media_type: str = "https://www.iana.org/assignments/media-types/application/fhir+json"
    access_service: DataService | None = None

    @property
    def dsp_format(self) -> str:
        return DSP_FORMATS[self.output_type]


class Dataset(_Model):
    iri: str
    identifier: str
    title: str
    description: str
    keywords: tuple[str, ...] = Field(min_length=1)
    types: tuple[str, ...] = (str(eu("dataset-type/STATISTICAL")),)
    publisher: Agent
    hdab: Agent
    contact_point: ContactPoint
    provenance: str
    health_categories: tuple[HealthCategory, ...] = Field(min_length=1)
    coding_systems: tuple[CodingSystem, ...] = ()
    code_values: tuple[str, ...] = ()
    min_typical_age: int | None = Field(default=None, ge=0)
    max_typical_age: int | None = Field(default=None, ge=0)
    number_of_records: int | None = Field(default=None, ge=0)
    number_of_unique_individuals: int | None = Field(default=None, ge=0)
    population_coverage: str | None = None
    personal_data: tuple[str, ...] = ()  # local names in dpv-pd, e.g. "Age", "Gender"
    legal_basis: str | None = None
    purpose: str | None = None
    temporal_start: dt.date | None = None
    temporal_end: dt.date | None = None
    conforms_to: tuple[str, ...] = (str(FHIR_STANDARD),)
    applicable_legislation: tuple[str, ...] = (str(EHDS_REGULATION),)
    languages: tuple[str, ...] = (str(eu("language/ENG")),)
    spatial: tuple[str, ...] = ()
    variables_title: str | None = None
    columns: tuple[Column, ...] = ()
    issued: dt.date | None = None
    modified: dt.datetime | None = None
    version: str | None = None
    distributions: tuple[Distribution, ...] = Field(min_length=1)
    policies: tuple[dict[str, Any], ...] = ()  # ODRL offers as JSON-LD (compact or expanded)

    @property
    def has_structured_data(self) -> bool:
        return bool(self.columns)

    @property
    def output_types(self) -> tuple[OutputType, ...]:
        return tuple(dict.fromkeys(d.output_type for d in self.distributions))


class Catalog(_Model):
    iri: str
    title: str
    description: str
    publisher: Agent
    homepage: str | None = None
    modified: dt.datetime | None = None
    datasets: tuple[Dataset, ...] = ()
    service: DataService | None = None
