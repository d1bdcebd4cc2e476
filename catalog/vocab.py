"""RDF vocabularies used by the catalog.

Our own terms and HealthDCAT-AP's are `DefinedNamespace`s (a typo is an AttributeError, not a
silent new IRI); the well-known W3C/EU vocabularies are plain `Namespace`s.
"""

from __future__ import annotations

from rdflib import Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF, RDFS, SKOS, XSD, DefinedNamespace

__all__ = [
    "ADMS",
    "CSVW",
    "CV",
    "DCAT",
    "DCATAP",
    "DCAT_VERSION",
    "DCTERMS",
    "DPV",
    "DPV_PD",
    "FOAF",
    "HEALTHDCATAP",
    "HYDRA",
    "ODRL",
    "PHEMS",
    "RDF",
    "RDFS",
    "SKOS",
    "VCARD",
    "XSD",
    "PREFIXES",
]


class HEALTHDCATAP(DefinedNamespace):
    """HealthDCAT-AP Release 8 properties (namespace still the provisional one the shapes use)."""

    _NS = Namespace("http://healthdataportal.eu/ns/health#")
    _fail = True

    analytics: URIRef
    hasCodeValues: URIRef
    hasCodingSystem: URIRef
    hasStructuredData: URIRef
    hasVariables: URIRef
    hdab: URIRef
    hdabCoordinator: URIRef
    healthCategory: URIRef
    healthTheme: URIRef
    maxTypicalAge: URIRef
    minTypicalAge: URIRef
    numberOfRecords: URIRef
    numberOfUniqueIndividuals: URIRef
    populationCoverage: URIRef
    retentionPeriod: URIRef


class PHEMS(DefinedNamespace):
    """phems-connector profile terms (DESIGN.md section 3: policies and transfer formats)."""

    _NS = Namespace("https://w3id.org/phems/ns/")
    _fail = True

    outputType: URIRef
    minCellSize: URIRef
    epsilon: URIRef
    patients: URIRef
    dataPermit: URIRef
    membership: URIRef
    signature: URIRef
    aggregate: URIRef
    synthetic: URIRef
    anonymized: URIRef


DCATAP = Namespace("http://data.europa.eu/r5r/")
DPV = Namespace("https://w3id.org/dpv#")
DPV_PD = Namespace("https://w3id.org/dpv/dpv-pd#")
CSVW = Namespace("http://www.w3.org/ns/csvw#")
CV = Namespace("http://data.europa.eu/m8g/")
ADMS = Namespace("http://www.w3.org/ns/adms#")
VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
ODRL = Namespace("http://www.w3.org/ns/odrl/2/")
HYDRA = Namespace("http://www.w3.org/ns/hydra/core#")
DCAT_VERSION = URIRef(str(DCAT) + "version")  # DCAT 3 term, absent from rdflib's DCAT 2

PREFIXES: dict[str, Namespace] = {
    "dcat": Namespace(str(DCAT)),
    "dct": Namespace(str(DCTERMS)),
    "dcatap": DCATAP,
    "healthdcatap": Namespace(str(HEALTHDCATAP._NS)),
    "dpv": DPV,
    "dpv-pd": DPV_PD,
    "csvw": CSVW,
    "cv": CV,
    "adms": ADMS,
    "vcard": VCARD,
    "odrl": ODRL,
    "foaf": Namespace(str(FOAF)),
    "skos": Namespace(str(SKOS)),
    "hydra": HYDRA,
    "phems": Namespace(str(PHEMS._NS)),
}
