"""A realistic children's-hospital dataset, for `serve --with-sample-data`, tests and demos.

The statistics are a parameter: the connector passes those computed from its FHIR source
(through `catalog.statistics.safe_statistics`); `DEMO_STATISTICS` exists only for tests.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from catalog.codes import HealthCategory, eu, hdeu
from catalog.formats import OutputType
from catalog.model import (
    Agent,
    Catalog,
    Column,
    ContactPoint,
    DataService,
    Dataset,
    Distribution,
)
from catalog.statistics import SafeStatistics, safe_statistics

PHEMS_NS = "https://w3id.org/phems/ns/"

DEMO_STATISTICS = safe_statistics(
    records=48_213,
    individuals=1_874,
    ages=[a % 18 for a in range(1_874)],
    dates=[dt.date(2019, 1, 7), *[dt.date(2021, 6, 1)] * 10, dt.date(2024, 11, 28)],
    coding_system_counts={"SNOMED-CT": 20_000, "LOINC": 25_000, "ICD-10": 3_000, "ATC": 6},
)

# Columns of the SQL-on-FHIR views the dataset is flattened into (name, type, description).
VIEW_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("patient_sex", "string", "Administrative sex of the child (FHIR Patient.gender)."),
    ("age_at_encounter_years", "integer", "Age in whole years at the start of the encounter."),
    ("encounter_class", "string", "Inpatient, outpatient or emergency (Encounter.class)."),
    ("encounter_start", "date", "Start date of the hospital encounter."),
    ("condition_code", "string", "Diagnosis code (SNOMED CT or ICD-10) of the condition."),
    ("observation_code", "string", "LOINC code of the measurement (e.g. SpO2, FEV1, weight)."),
    ("observation_value", "decimal", "Measured value of the observation."),
    ("observation_unit", "string", "UCUM unit of the observation value."),
)


def example_policies(dataset_id: str, *, base_url: str) -> tuple[dict[str, Any], ...]:
    """Offers: aggregate research use for members; synthetic data with a permit until 2027."""
    membership = {
        "leftOperand": PHEMS_NS + "membership",
        "operator": "eq",
        "rightOperand": True,
    }
    research = {"leftOperand": "purpose", "operator": "eq", "rightOperand": "research"}
    return (
        {
            "@id": f"{base_url}/catalog/offers/{dataset_id}-aggregate",
            "@type": "Offer",
            "permission": [
                {
                    "action": "use",
                    "constraint": [
                        {
                            "and": [
                                research,
                                membership,
                                {
                                    "leftOperand": PHEMS_NS + "outputType",
                                    "operator": "eq",
                                    "rightOperand": "aggregate",
                                },
                                {
                                    "leftOperand": PHEMS_NS + "minCellSize",
                                    "operator": "gteq",
                                    "rightOperand": 10,
                                },
                            ]
                        }
                    ],
                }
            ],
        },
        {
            "@id": f"{base_url}/catalog/offers/{dataset_id}-synthetic",
            "@type": "Offer",
            "permission": [
                {
                    "action": "use",
                    "constraint": [
                        {
                            "and": [
                                research,
                                {
                                    "leftOperand": PHEMS_NS + "outputType",
                                    "operator": "eq",
                                    "rightOperand": "synthetic",
                                },
                                {
                                    "leftOperand": PHEMS_NS + "dataPermit",
                                    "operator": "eq",
                                    "rightOperand": True,
                                },
                                {
                                    "leftOperand": "dateTime",
                                    "operator": "lteq",
                                    "rightOperand": {
                                        "@value": "2027-12-31T23:59:59Z",
                                        "@type": "xsd:dateTime",
                                    },
                                },
                            ]
                        }
                    ],
                }
            ],
        },
    )


def hospital_agent(base_url: str, name: str) -> Agent:
    return Agent(
        iri=f"{base_url}/#hospital",
        name=name,
        type=str(hdeu("publisher-type/healthcare-providers")),
        contact=ContactPoint(
            email="research-data@hospital.example", url=f"{base_url}/catalog", telephone=None
        ),
    )


def data_service(base_url: str) -> DataService:
    return DataService(
        iri=f"{base_url}/#dsp",
        title="Dataspace Protocol 2025-1 endpoint",
        endpoint_url=f"{base_url}/dsp/2025-1",
        endpoint_description=f"{base_url}/.well-known/dspace-version",
    )


def example_dataset(
    *,
    base_url: str = "http://127.0.0.1:8080",
    dataset_id: str = "paediatric-respiratory-2019-2024",
    hospital_name: str = "Example Children's Hospital",
    statistics: SafeStatistics = DEMO_STATISTICS,
    modified: dt.datetime | None = None,
    policies: tuple[dict[str, Any], ...] | None = None,
    country: str = "DEU",
) -> Dataset:
    """One realistic NON_PUBLIC dataset of a children's hospital, with its ODRL offers."""
    iri = f"{base_url}/catalog/datasets/{dataset_id}"
    svc = data_service(base_url)
    return Dataset(
        iri=iri,
        identifier=dataset_id,
        title="Paediatric respiratory care cohort",
        description=(
            "Children and adolescents treated for asthma, bronchiolitis and other respiratory "
            "conditions: encounters, diagnoses, vital signs and lung-function measurements "
            "from the hospital's FHIR records. Available as disclosure-controlled aggregate "
            "statistics and as synthetic FHIR data; record-level data never leaves the hospital."
        ),
        keywords=("paediatrics", "asthma", "bronchiolitis", "respiratory", "FHIR"),
        types=(str(eu("dataset-type/STATISTICAL")),),
        publisher=hospital_agent(base_url, hospital_name),
        hdab=Agent(
            iri="https://hdab.example.eu/#hdab",
            name="National Health Data Access Body (example)",
            type=str(hdeu("publisher-type/national-authority")),
            contact=ContactPoint(email="permits@hdab.example.eu", url="https://hdab.example.eu/"),
        ),
        contact_point=ContactPoint(email="research-data@hospital.example", url=f"{base_url}/"),
        provenance=(
            "Extracted from the hospital's electronic health record through its FHIR R4 API, "
            "flattened with SQL-on-FHIR v2 views; patients who opted out of secondary use are "
            "removed before any processing."
        ),
        health_categories=(HealthCategory.EHRS,),
        coding_systems=statistics.coding_systems,
        code_values=("J45", "J21", "195967001", "59408-5"),
        min_typical_age=statistics.min_typical_age,
        max_typical_age=statistics.max_typical_age,
        number_of_records=statistics.number_of_records,
        number_of_unique_individuals=statistics.number_of_unique_individuals,
        population_coverage=(
            "Patients aged 0 to 17 years seen at the hospital's paediatric pulmonology, "
            "emergency and intensive care departments."
        ),
        personal_data=("Age", "Gender", "HealthRecord"),
        legal_basis=(
            "Secondary use under Chapter IV of the European Health Data Space Regulation "
            "(EU) 2025/327, with a data permit or a data request approved by the HDAB."
        ),
        purpose="Scientific research related to the health and care sectors (EHDS Art. 53).",
        temporal_start=statistics.temporal_start,
        temporal_end=statistics.temporal_end,
        spatial=(str(eu(f"country/{country}")),),
        variables_title="Respiratory cohort view columns",
        columns=tuple(
            Column(name=n, datatype=t, description=d) for n, t, d in sorted(VIEW_COLUMNS)
        ),
        issued=dt.date(2025, 3, 1),
        modified=modified or dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC),
        version="1.0",
        distributions=(
            Distribution(
                iri=f"{iri}/distributions/aggregate",
                title="Aggregate statistics (FHIR MeasureReport)",
                description="Cohort counts and summaries with disclosure control and noise.",
                output_type=OutputType.AGGREGATE,
                access_url=svc.endpoint_url,
                access_service=svc,
            ),
            Distribution(
                iri=f"{iri}/distributions/synthetic",
                title="Synthetic FHIR bundle",
                description="Synthetic patients generated at the hospital, with quality and "
                "privacy reports.",
                output_type=OutputType.SYNTHETIC,
                access_url=svc.endpoint_url,
                access_service=svc,
            ),
        ),
        policies=policies
        if policies is not None
        else example_policies(dataset_id, base_url=base_url),
    )


def example_catalog(
    datasets: tuple[Dataset, ...] | None = None,
    *,
    base_url: str = "http://127.0.0.1:8080",
    hospital_name: str = "Example Children's Hospital",
) -> Catalog:
    ds = datasets if datasets is not None else (example_dataset(base_url=base_url),)
    return Catalog(
        iri=f"{base_url}/catalog",
        title=f"{hospital_name}: health data catalogue",
        description="Datasets this hospital offers for secondary use through phems-connector.",
        publisher=hospital_agent(base_url, hospital_name),
        homepage=f"{base_url}/",
        modified=max((d.modified for d in ds if d.modified), default=None),
        datasets=ds,
        service=data_service(base_url),
    )
