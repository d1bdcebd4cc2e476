"""Controlled vocabularies (EU and HealthData@EU NALs) with the labels we serve.

The official shapes check each coded value through `skos:inScheme` (and sometimes a class such
as `dct:Standard`). Rather than loading the NAL files, the catalog serves, for every coded IRI it
uses, the concept triples itself (`add_concept_triples`), so any validator works offline.
Only the concepts below are known; an unknown code gets no triples and therefore fails the shapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from rdflib import Graph, Literal, URIRef

from catalog.vocab import DCTERMS, RDF, SKOS

EU = "http://publications.europa.eu/resource/authority/"
HDEU = "https://hdeu-dcat.data.health.europa.eu/resource/authority/"

EHDS_REGULATION = URIRef("http://data.europa.eu/eli/reg/2025/327/oj")
NON_PUBLIC = URIRef(EU + "access-right/NON_PUBLIC")
THEME_HEALTH = URIRef(EU + "data-theme/HEAL")
FHIR_STANDARD = URIRef(HDEU + "standard/FHIR")


@dataclass(frozen=True, slots=True)
class Scheme:
    iri: str
    title: str
    extra_type: URIRef | None = None  # class the shapes expect on members (e.g. dct:Standard)


SCHEMES: dict[str, Scheme] = {
    s.iri: s
    for s in (
        Scheme(EU + "access-right", "Access right"),
        Scheme(EU + "data-theme", "Data theme"),
        Scheme(EU + "dataset-type", "Dataset type"),
        Scheme(EU + "language", "Language"),
        Scheme(EU + "frequency", "Frequency", DCTERMS.Frequency),
        Scheme(EU + "file-type", "File type", DCTERMS.MediaTypeOrExtent),
        Scheme(EU + "country", "Country", DCTERMS.Location),
        Scheme(HDEU + "healthcategories", "Health Categories"),
        Scheme(HDEU + "coding-system", "Coding Systems", DCTERMS.Standard),
        Scheme(HDEU + "standard", "Standards", DCTERMS.Standard),
        Scheme(HDEU + "publisher-type", "Publisher types"),
    )
}


class HealthCategory(StrEnum):
    """The 17 EHDS health data categories (Article 51), HealthData@EU codes."""

    EHRS = "EHRS"
    DIOH = "DIOH"
    PGEH = "PGEH"
    EMRD = "EMRD"
    HGPD = "HGPD"
    HPML = "HPML"
    IDHP = "IDHP"
    PHDR = "PHDR"
    MRMR = "MRMR"
    RMMD = "RMMD"
    EHCT = "EHCT"
    EINS = "EINS"
    RPDG = "RPDG"
    HRAD = "HRAD"
    NRPE = "NRPE"
    RQSH = "RQSH"
    WELA = "WELA"

    @property
    def iri(self) -> URIRef:
        return URIRef(f"{HDEU}healthcategories/{self.value}")

    @property
    def label(self) -> str:
        return HEALTH_CATEGORY_LABELS[self]


HEALTH_CATEGORY_LABELS: dict[HealthCategory, str] = {
    HealthCategory.EHRS: "Electronic health data from EHRs",
    HealthCategory.DIOH: "Data on factors impacting on health, including socio-economic, "
    "environmental and behavioural determinants of health",
    HealthCategory.PGEH: "Personal electronic health data automatically generated through "
    "medical devices",
    HealthCategory.EMRD: "Other health data from medical devices",
    HealthCategory.HGPD: "Human genetic, epigenomic and genomic data",
    HealthCategory.HPML: "Other human molecular data such as proteomic, transcriptomic, "
    "metabolomic, lipidomic and other omic data",
    HealthCategory.IDHP: "Data on professional status, and on the specialisation and institution "
    "of health professionals involved in the treatment of a natural person",
    HealthCategory.PHDR: "Data from population-based health data registries such as public "
    "health registries",
    HealthCategory.MRMR: "Data from medical registries and mortality registries",
    HealthCategory.RMMD: "Data from registries for medicinal products and medical devices",
    HealthCategory.EHCT: "Data from clinical trials, clinical studies, clinical investigations "
    "and performance studies",
    HealthCategory.EINS: "Health data from biobanks and associated databases",
    HealthCategory.RPDG: "Data on pathogens that impact human health",
    HealthCategory.HRAD: "Healthcare-related administrative data, including on dispensations, "
    "reimbursement claims and reimbursements",
    HealthCategory.NRPE: "Aggregated data on healthcare needs, resources allocated to healthcare, "
    "the provision of and access to healthcare, healthcare expenditure and financing",
    HealthCategory.RQSH: "Data from research cohorts, questionnaires and surveys related to "
    "health, after the first publication of the related results",
    HealthCategory.WELA: "Data from wellness applications",
}


class CodingSystem(StrEnum):
    """Coding systems of the HealthData@EU coding-system vocabulary used by hospitals."""

    SNOMED_CT = "SNOMED-CT"
    LOINC = "LOINC"
    ICD_10 = "ICD-10"
    ICD_10_NAT = "ICD-10-NAT"
    ICD_11 = "ICD-11"
    ICD_O = "ICD-O"
    ATC = "ATC"
    UCUM = "UCUM"
    ORPHACODE = "ORPHACODE"
    HPO = "HPO"
    OPS = "OPS"
    RXNORM = "RXNORM"

    @property
    def iri(self) -> URIRef:
        return URIRef(f"{HDEU}coding-system/{self.value}")

    @property
    def label(self) -> str:
        return CODING_SYSTEM_LABELS[self]


CODING_SYSTEM_LABELS: dict[CodingSystem, str] = {
    CodingSystem.SNOMED_CT: "SNOMED CT",
    CodingSystem.LOINC: "LOINC",
    CodingSystem.ICD_10: "ICD-10",
    CodingSystem.ICD_10_NAT: "ICD-10 national modification",
    CodingSystem.ICD_11: "ICD-11",
    CodingSystem.ICD_O: "ICD-O (oncology)",
    CodingSystem.ATC: "Anatomical Therapeutic Chemical Classification System",
    CodingSystem.UCUM: "UCUM (units of measure)",
    CodingSystem.ORPHACODE: "ORPHAcode (rare diseases)",
    CodingSystem.HPO: "Human Phenotype Ontology",
    CodingSystem.OPS: "OPS (procedures)",
    CodingSystem.RXNORM: "RxNorm",
}

_OTHER_LABELS: dict[str, str] = {
    EU + "access-right/NON_PUBLIC": "Non-public",
    EU + "data-theme/HEAL": "Health",
    EU + "dataset-type/STATISTICAL": "Statistical data",
    EU + "dataset-type/SYNTHETIC_DATA": "Synthetic data",
    EU + "language/ENG": "English",
    EU + "language/DEU": "German",
    EU + "language/FRA": "French",
    EU + "language/NLD": "Dutch",
    EU + "language/SPA": "Spanish",
    EU + "language/ITA": "Italian",
    EU + "language/POR": "Portuguese",
    EU + "language/FIN": "Finnish",
    EU + "frequency/DAILY": "Daily",
    EU + "frequency/WEEKLY": "Weekly",
    EU + "frequency/MONTHLY": "Monthly",
    EU + "frequency/ANNUAL": "Annual",
    EU + "frequency/CONT": "Continuous",
    EU + "file-type/JSON": "JSON",
    EU + "file-type/JSON_LD": "JSON-LD",
    EU + "file-type/CSV": "CSV",
    EU + "country/DEU": "Germany",
    EU + "country/FRA": "France",
    EU + "country/NLD": "Netherlands",
    EU + "country/BEL": "Belgium",
    EU + "country/ESP": "Spain",
    EU + "country/ITA": "Italy",
    EU + "country/AUT": "Austria",
    EU + "country/PRT": "Portugal",
    EU + "country/FIN": "Finland",
    EU + "country/SWE": "Sweden",
    EU + "country/DNK": "Denmark",
    EU + "country/POL": "Poland",
    EU + "country/IRL": "Ireland",
    HDEU + "standard/FHIR": "HL7 FHIR",
    HDEU + "standard/OMOP-CDM": "OMOP Common Data Model",
    HDEU + "publisher-type/healthcare-providers": "Healthcare providers",
    HDEU + "publisher-type/national-authority": "National authority",
    HDEU + "publisher-type/public-health-institute": "Public health institute",
}

LABELS: dict[str, str] = {
    **{str(c.iri): c.label for c in HealthCategory},
    **{str(c.iri): c.label for c in CodingSystem},
    **_OTHER_LABELS,
}


def scheme_of(iri: str) -> Scheme | None:
    return SCHEMES.get(iri.rsplit("/", 1)[0]) if iri in LABELS else None


def label_of(iri: str) -> str:
    """English label of a known concept, else the last path segment of the IRI."""
    return LABELS.get(iri) or iri.rstrip("/").rsplit("/", 1)[-1].rsplit("#", 1)[-1]


def eu(path: str) -> URIRef:
    """An EU publications-office authority IRI, e.g. `eu("language/ENG")`."""
    return URIRef(EU + path)


def hdeu(path: str) -> URIRef:
    """A HealthData@EU authority IRI, e.g. `hdeu("publisher-type/healthcare-providers")`."""
    return URIRef(HDEU + path)


def add_concept_triples(graph: Graph) -> None:
    """Describe every known coded IRI used as an object in `graph` (type, scheme, label)."""
    used = {o for o in graph.objects() if isinstance(o, URIRef) and str(o) in LABELS}
    for concept in used:
        scheme = scheme_of(str(concept))
        if scheme is None:
            continue
        s = URIRef(scheme.iri)
        graph.add((concept, RDF.type, SKOS.Concept))
        graph.add((concept, SKOS.inScheme, s))
        graph.add((concept, SKOS.prefLabel, Literal(LABELS[str(concept)], lang="en")))
        if scheme.extra_type is not None:
            graph.add((concept, RDF.type, scheme.extra_type))
        graph.add((s, RDF.type, SKOS.ConceptScheme))
        graph.add((s, DCTERMS.title, Literal(scheme.title, lang="en")))
