"""Graph -> model: read a HealthDCAT-AP dataset back (the inverse of `catalog.rdf.to_graph`).

Auxiliary triples the writer adds for the shapes (concept descriptions, class declarations) are
ignored; multi-valued properties come back sorted, so `to_graph(from_graph(g, iri))` is
isomorphic to the dataset's part of `g`.
"""

from __future__ import annotations

import datetime as dt
from typing import cast

from rdflib import Graph, Literal, URIRef
from rdflib.term import Node

from catalog.codes import CodingSystem, HealthCategory
from catalog.formats import OutputType
from catalog.model import (
    Agent,
    Column,
    ContactPoint,
    DataService,
    Dataset,
    Distribution,
)
from catalog.odrl import policy_dict
from catalog.vocab import (
    CSVW,
    CV,
    DCAT,
    DCAT_VERSION,
    DCATAP,
    DCTERMS,
    DPV,
    DPV_PD,
    FOAF,
    HEALTHDCATAP,
    ODRL,
    PHEMS,
    RDF,
    RDFS,
    VCARD,
)

H = HEALTHDCATAP


class GraphError(ValueError):
    """The graph does not describe a dataset the model can hold."""


def _one(g: Graph, s: Node, p: URIRef) -> Node | None:
    return g.value(s, p)


def _text(g: Graph, s: Node, p: URIRef) -> str | None:
    v = g.value(s, p)
    return None if v is None else str(v)


def _req(g: Graph, s: Node, p: URIRef) -> str:
    v = _text(g, s, p)
    if v is None:
        raise GraphError(f"{s} has no {p}")
    return v


def _all(g: Graph, s: Node, p: URIRef) -> tuple[str, ...]:
    return tuple(sorted(str(o) for o in g.objects(s, p)))


def _int(g: Graph, s: Node, p: URIRef) -> int | None:
    v = g.value(s, p)
    return None if v is None else int(str(v))


def _contact_kind(g: Graph, n: Node) -> ContactPoint:
    email = _text(g, n, VCARD.hasEmail)
    return ContactPoint(
        email=email.removeprefix("mailto:") if email else None,
        url=_text(g, n, VCARD.hasURL),
        telephone=_text(g, n, VCARD.hasTelephone),
    )


def _agent(g: Graph, n: Node | None) -> Agent:
    if n is None:
        raise GraphError("missing agent")
    cp = g.value(n, CV.contactPoint)
    if cp is None:
        raise GraphError(f"agent {n} has no cv:contactPoint")
    return Agent(
        iri=str(n) if isinstance(n, URIRef) else None,
        name=_req(g, n, FOAF.name),
        type=_req(g, n, DCTERMS.type),
        contact=ContactPoint(
            email=_text(g, cp, CV.email),
            url=_text(g, cp, CV.contactPage),
            telephone=_text(g, cp, CV.telephone),
        ),
    )


def _service(g: Graph, n: Node | None) -> DataService | None:
    if n is None:
        return None
    return DataService(
        iri=str(n),
        title=_req(g, n, DCTERMS.title),
        endpoint_url=_req(g, n, DCAT.endpointURL),
        endpoint_description=_text(g, n, DCAT.endpointDescription),
    )


def _distribution(g: Graph, n: Node) -> Distribution:
    out = _req(g, n, PHEMS.outputType).removeprefix(str(PHEMS._NS))
    return Distribution(
        iri=str(n),
        title=_req(g, n, DCTERMS.title),
        description=_req(g, n, DCTERMS.description),
        output_type=OutputType(out),
        access_url=_req(g, n, DCAT.accessURL),
        format=_req(g, n, DCTERMS.format),
        media_type=_req(g, n, DCAT.mediaType),
        access_service=_service(g, g.value(n, DCAT.accessService)),
    )


def _columns(g: Graph, group: Node | None) -> tuple[str | None, tuple[Column, ...]]:
    if group is None:
        return None, ()
    cols = []
    for table in g.objects(group, CSVW.table):
        for c in g.objects(table, CSVW.column):
            name = _req(g, c, CSVW.name)
            title = _text(g, c, CSVW.title)
            cols.append(
                Column(
                    name=name,
                    datatype=_text(g, c, CSVW.datatype) or "string",
                    description=_req(g, c, DCTERMS.description),
                    title=None if title == name else title,
                )
            )
    return _text(g, group, DCTERMS.title), tuple(sorted(cols, key=lambda c: c.name))


def _py_date(v: Node | None) -> dt.date | None:
    return cast(dt.date, v.toPython()) if isinstance(v, Literal) else None


def _py_datetime(v: Node | None) -> dt.datetime | None:
    return cast(dt.datetime, v.toPython()) if isinstance(v, Literal) else None


def from_graph(g: Graph, dataset_iri: str) -> Dataset:
    """Read the dataset `dataset_iri` back from `g` (inverse of `to_graph` for datasets).

    Raises `GraphError` (a ValueError) naming what is missing or not understood, e.g. a
    health category or coding system outside the known vocabularies.
    """
    try:
        return _read_dataset(g, dataset_iri)
    except GraphError:
        raise
    except ValueError as exc:  # unknown codes, pydantic validation errors
        raise GraphError(f"{dataset_iri}: {exc}") from exc


def _read_dataset(g: Graph, dataset_iri: str) -> Dataset:
    s = URIRef(dataset_iri)
    if (s, RDF.type, DCAT.Dataset) not in g:
        raise GraphError(f"{dataset_iri} is not a dcat:Dataset in this graph")
    period = g.value(s, DCTERMS.temporal)
    start = g.value(period, DCAT.startDate) if period is not None else None
    end = g.value(period, DCAT.endDate) if period is not None else None
    legal = g.value(s, DPV.hasLegalBasis)
    purpose = g.value(s, DPV.hasPurpose)
    prov = g.value(s, DCTERMS.provenance)
    modified = g.value(s, DCTERMS.modified)
    issued = g.value(s, DCTERMS.issued)
    contact = g.value(s, DCAT.contactPoint)
    if contact is None or prov is None:
        raise GraphError(f"{dataset_iri} lacks dcat:contactPoint or dct:provenance")
    var_title, columns = _columns(g, g.value(s, H.hasVariables))
    generated_title = f"Variables of {_req(g, s, DCTERMS.title)}"
    return Dataset(
        iri=dataset_iri,
        identifier=_req(g, s, DCTERMS.identifier),
        title=_req(g, s, DCTERMS.title),
        description=_req(g, s, DCTERMS.description),
        keywords=_all(g, s, DCAT.keyword),
        types=_all(g, s, DCTERMS.type),
        publisher=_agent(g, g.value(s, DCTERMS.publisher)),
        hdab=_agent(g, g.value(s, H.hdab)),
        contact_point=_contact_kind(g, contact),
        provenance=_req(g, prov, RDFS.label),
        health_categories=tuple(
            HealthCategory(iri.rsplit("/", 1)[-1]) for iri in _all(g, s, H.healthCategory)
        ),
        coding_systems=tuple(
            CodingSystem(iri.rsplit("/", 1)[-1]) for iri in _all(g, s, H.hasCodingSystem)
        ),
        code_values=_all(g, s, H.hasCodeValues),
        min_typical_age=_int(g, s, H.minTypicalAge),
        max_typical_age=_int(g, s, H.maxTypicalAge),
        number_of_records=_int(g, s, H.numberOfRecords),
        number_of_unique_individuals=_int(g, s, H.numberOfUniqueIndividuals),
        population_coverage=_text(g, s, H.populationCoverage),
        personal_data=tuple(p.removeprefix(str(DPV_PD)) for p in _all(g, s, DPV.hasPersonalData)),
        legal_basis=_text(g, legal, DCTERMS.description) if legal is not None else None,
        purpose=_text(g, purpose, DCTERMS.description) if purpose is not None else None,
        temporal_start=_py_date(start),
        temporal_end=_py_date(end),
        conforms_to=_all(g, s, DCTERMS.conformsTo),
        applicable_legislation=_all(g, s, DCATAP.applicableLegislation),
        languages=_all(g, s, DCTERMS.language),
        spatial=_all(g, s, DCTERMS.spatial),
        variables_title=None if var_title == generated_title else var_title,
        columns=columns,
        issued=_py_date(issued),
        modified=_py_datetime(modified),
        version=_text(g, s, DCAT_VERSION),
        distributions=tuple(
            _distribution(g, d) for d in sorted(g.objects(s, DCAT.distribution), key=str)
        ),
        policies=tuple(policy_dict(g, p) for p in sorted(g.objects(s, ODRL.hasPolicy), key=str)),
    )


def dataset_iris(g: Graph) -> list[str]:
    """IRIs of all datasets in a graph, sorted."""
    return sorted(str(s) for s in g.subjects(RDF.type, DCAT.Dataset) if isinstance(s, URIRef))
