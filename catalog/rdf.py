"""Model <-> rdflib graph for HealthDCAT-AP R8 (NON_PUBLIC tier over DCAT-AP 3.0.1).

`to_graph(catalog_or_dataset)` emits everything the official shapes check, including the
concept triples of every coded IRI (`catalog.codes.add_concept_triples`) and the small class
declarations the range shapes ask for (`eli:LegalResource`, `dct:MediaType`, `dpv:PersonalData`),
so the graph validates without external vocabulary files. `from_graph(graph, dataset_iri)` reads
a dataset back (implemented in `catalog.reading`); the round trip Turtle -> model -> Turtle
is isomorphic.
"""

from __future__ import annotations

from collections.abc import Iterable

from rdflib import BNode, Graph, Literal, URIRef
from rdflib.term import Node

from catalog.codes import (
    EHDS_REGULATION,
    NON_PUBLIC,
    THEME_HEALTH,
    add_concept_triples,
)
from catalog.model import (
    Agent,
    Catalog,
    ContactPoint,
    DataService,
    Dataset,
    Distribution,
)
from catalog.odrl import add_policy
from catalog.reading import GraphError, dataset_iris, from_graph  # re-exported
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
    PHEMS,
    PREFIXES,
    RDF,
    RDFS,
    VCARD,
    XSD,
)

ELI_LEGAL_RESOURCE = URIRef("http://data.europa.eu/eli/ontology#LegalResource")
H = HEALTHDCATAP


def new_graph() -> Graph:
    g = Graph()
    for prefix, ns in PREFIXES.items():
        g.bind(prefix, ns)
    return g


def _en(text: str) -> Literal:
    return Literal(text, lang="en")


def _nni(value: int) -> Literal:
    return Literal(value, datatype=XSD.nonNegativeInteger)


def _node(iri: str | None) -> URIRef | BNode:
    return URIRef(iri) if iri else BNode()


def to_graph(item: Catalog | Dataset) -> Graph:
    """The complete RDF description of a catalog (with its datasets) or of one dataset."""
    g = new_graph()
    if isinstance(item, Catalog):
        _add_catalog(g, item)
    else:
        _add_dataset(g, item)
    add_concept_triples(g)
    return g


def _add_catalog(g: Graph, c: Catalog) -> None:
    s = URIRef(c.iri)
    g.add((s, RDF.type, DCAT.Catalog))
    g.add((s, DCTERMS.title, _en(c.title)))
    g.add((s, DCTERMS.description, _en(c.description)))
    g.add((s, DCTERMS.publisher, _add_agent(g, c.publisher)))
    _add_legislation(g, s, [str(EHDS_REGULATION)])
    if c.homepage:
        g.add((s, FOAF.homepage, URIRef(c.homepage)))
        g.add((URIRef(c.homepage), RDF.type, FOAF.Document))
    if c.modified:
        g.add((s, DCTERMS.modified, Literal(c.modified)))
    if c.service:
        g.add((s, DCAT.service, _add_service(g, c.service)))
    for ds in c.datasets:
        g.add((s, DCAT.dataset, _add_dataset(g, ds)))


def _add_legislation(g: Graph, s: Node, iris: Iterable[str]) -> None:
    for iri in iris:
        g.add((s, DCATAP.applicableLegislation, URIRef(iri)))
        g.add((URIRef(iri), RDF.type, ELI_LEGAL_RESOURCE))


def _add_contact_kind(g: Graph, c: ContactPoint) -> BNode:
    n = BNode()
    g.add((n, RDF.type, VCARD.Kind))
    if c.email:
        g.add((n, VCARD.hasEmail, URIRef(f"mailto:{c.email}")))
    if c.url:
        g.add((n, VCARD.hasURL, URIRef(c.url)))
    if c.telephone:
        g.add((n, VCARD.hasTelephone, Literal(c.telephone)))
    return n


def _add_agent(g: Graph, a: Agent) -> URIRef | BNode:
    n = _node(a.iri)
    if (n, CV.contactPoint, None) in g:  # same agent already described (catalog and dataset)
        return n
    g.add((n, RDF.type, FOAF.Agent))
    g.add((n, FOAF.name, _en(a.name)))
    g.add((n, DCTERMS.type, URIRef(a.type)))
    cp = BNode()
    g.add((n, CV.contactPoint, cp))
    g.add((cp, RDF.type, CV.ContactPoint))
    if a.contact.email:
        g.add((cp, CV.email, Literal(a.contact.email)))
    if a.contact.url:
        g.add((cp, CV.contactPage, URIRef(a.contact.url)))
    if a.contact.telephone:
        g.add((cp, CV.telephone, Literal(a.contact.telephone)))
    return n


def _add_service(g: Graph, svc: DataService) -> URIRef:
    s = URIRef(svc.iri)
    g.add((s, RDF.type, DCAT.DataService))
    g.add((s, DCTERMS.title, _en(svc.title)))
    g.add((s, DCAT.endpointURL, URIRef(svc.endpoint_url)))
    if svc.endpoint_description:
        g.add((s, DCAT.endpointDescription, URIRef(svc.endpoint_description)))
    return s


def _add_distribution(g: Graph, d: Distribution, legislation: Iterable[str]) -> URIRef:
    s = URIRef(d.iri)
    g.add((s, RDF.type, DCAT.Distribution))
    g.add((s, DCTERMS.title, _en(d.title)))
    g.add((s, DCTERMS.description, _en(d.description)))
    g.add((s, DCAT.accessURL, URIRef(d.access_url)))
    g.add((s, DCTERMS.format, URIRef(d.format)))
    g.add((s, DCAT.mediaType, URIRef(d.media_type)))
    g.add((URIRef(d.media_type), RDF.type, DCTERMS.MediaType))
    g.add((s, PHEMS.outputType, PHEMS[d.output_type.value]))
    _add_legislation(g, s, legislation)
    if d.access_service:
        g.add((s, DCAT.accessService, _add_service(g, d.access_service)))
    return s


def _add_variables(g: Graph, ds: Dataset) -> BNode:
    group, table = BNode(), BNode()
    title = ds.variables_title or f"Variables of {ds.title}"
    g.add((group, RDF.type, CSVW.TableGroup))
    g.add((group, DCTERMS.title, _en(title)))
    g.add((group, CSVW.table, table))
    g.add((table, RDF.type, CSVW.Table))
    g.add((table, DCTERMS.title, _en(title)))
    for col in ds.columns:
        c = BNode()
        g.add((table, CSVW.column, c))
        g.add((c, RDF.type, CSVW.Column))
        g.add((c, CSVW.name, Literal(col.name)))
        g.add((c, CSVW.title, _en(col.title or col.name)))
        g.add((c, CSVW.datatype, Literal(col.datatype)))
        g.add((c, DCTERMS.description, _en(col.description)))
    return group


def _described(g: Graph, cls: URIRef, pred: URIRef, text: str) -> BNode:
    n = BNode()
    g.add((n, RDF.type, cls))
    g.add((n, pred, _en(text)))
    return n


def _add_dataset(g: Graph, ds: Dataset) -> URIRef:
    s = URIRef(ds.iri)
    add = g.add
    add((s, RDF.type, DCAT.Dataset))
    add((s, DCTERMS.identifier, Literal(ds.identifier)))
    add((s, DCTERMS.title, _en(ds.title)))
    add((s, DCTERMS.description, _en(ds.description)))
    add((s, DCTERMS.accessRights, NON_PUBLIC))
    add((NON_PUBLIC, RDF.type, DCTERMS.RightsStatement))
    add((s, DCAT.theme, THEME_HEALTH))
    _add_legislation(g, s, ds.applicable_legislation)
    for kw in ds.keywords:
        add((s, DCAT.keyword, _en(kw)))
    for t in ds.types:
        add((s, DCTERMS.type, URIRef(t)))
    for lang in ds.languages:
        add((s, DCTERMS.language, URIRef(lang)))
        add((URIRef(lang), RDF.type, DCTERMS.LinguisticSystem))
    for place in ds.spatial:
        add((s, DCTERMS.spatial, URIRef(place)))
    for std in ds.conforms_to:
        add((s, DCTERMS.conformsTo, URIRef(std)))
    add((s, DCTERMS.publisher, _add_agent(g, ds.publisher)))
    add((s, H.hdab, _add_agent(g, ds.hdab)))
    add((s, DCAT.contactPoint, _add_contact_kind(g, ds.contact_point)))
    prov = _described(g, DCTERMS.ProvenanceStatement, RDFS.label, ds.provenance)
    add((s, DCTERMS.provenance, prov))
    for cat in ds.health_categories:
        add((s, H.healthCategory, cat.iri))
    for cs in ds.coding_systems:
        add((s, H.hasCodingSystem, cs.iri))
    for code in ds.code_values:
        add((s, H.hasCodeValues, Literal(code)))
    for prop, value in (
        (H.minTypicalAge, ds.min_typical_age),
        (H.maxTypicalAge, ds.max_typical_age),
        (H.numberOfRecords, ds.number_of_records),
        (H.numberOfUniqueIndividuals, ds.number_of_unique_individuals),
    ):
        if value is not None:
            add((s, prop, _nni(value)))
    if ds.population_coverage:
        add((s, H.populationCoverage, _en(ds.population_coverage)))
    for pd in ds.personal_data:
        add((s, DPV.hasPersonalData, DPV_PD[pd]))
        add((DPV_PD[pd], RDF.type, DPV.PersonalData))
    if ds.legal_basis:
        add(
            (
                s,
                DPV.hasLegalBasis,
                _described(g, DPV.LegalBasis, DCTERMS.description, ds.legal_basis),
            )
        )
    if ds.purpose:
        add((s, DPV.hasPurpose, _described(g, DPV.Purpose, DCTERMS.description, ds.purpose)))
    if ds.temporal_start or ds.temporal_end:
        period = BNode()
        add((s, DCTERMS.temporal, period))
        add((period, RDF.type, DCTERMS.PeriodOfTime))
        if ds.temporal_start:
            add((period, DCAT.startDate, Literal(ds.temporal_start, datatype=XSD.date)))
        if ds.temporal_end:
            add((period, DCAT.endDate, Literal(ds.temporal_end, datatype=XSD.date)))
    add((s, H.hasStructuredData, Literal(ds.has_structured_data)))
    if ds.columns:
        add((s, H.hasVariables, _add_variables(g, ds)))
    if ds.issued:
        add((s, DCTERMS.issued, Literal(ds.issued, datatype=XSD.date)))
    if ds.modified:
        add((s, DCTERMS.modified, Literal(ds.modified, datatype=XSD.dateTime)))
    if ds.version:
        add((s, DCAT_VERSION, Literal(ds.version)))
    for d in ds.distributions:
        add((s, DCAT.distribution, _add_distribution(g, d, ds.applicable_legislation)))
    for policy in ds.policies:
        add_policy(g, s, policy)
    return s


__all__ = ["GraphError", "dataset_iris", "from_graph", "new_graph", "to_graph"]
