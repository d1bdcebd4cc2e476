"""Model <-> RDF: round trips, golden Turtle, concept triples, all serialisations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rdflib import Graph, URIRef
from rdflib.compare import isomorphic, to_isomorphic

from catalog.codes import LABELS, HealthCategory
from catalog.model import Catalog, Dataset
from catalog.rdf import GraphError, dataset_iris, from_graph, to_graph
from catalog.serialize import JSON_LD, RDF_XML, TURTLE, serialize
from catalog.vocab import DCAT, DCTERMS, HEALTHDCATAP, SKOS

GOLDEN = Path(__file__).parent / "golden" / "example_dataset.ttl"


def test_turtle_model_turtle_is_isomorphic(dataset: Dataset) -> None:
    turtle = serialize(to_graph(dataset), TURTLE)
    g1 = Graph().parse(data=turtle, format="turtle")
    model = from_graph(g1, dataset.iri)
    g2 = Graph().parse(data=serialize(to_graph(model), TURTLE), format="turtle")
    assert isomorphic(g1, g2)
    assert model.policies and model.number_of_records == dataset.number_of_records


def test_golden_turtle_model_turtle_is_isomorphic() -> None:
    g1 = Graph().parse(GOLDEN, format="turtle")
    (iri,) = dataset_iris(g1)
    assert isomorphic(g1, to_graph(from_graph(g1, iri)))


def test_unknown_health_category_cannot_be_read_into_the_model(dataset: Dataset) -> None:
    g = to_graph(dataset)
    g.add(
        (
            URIRef(dataset.iri),
            HEALTHDCATAP.healthCategory,
            URIRef(str(HealthCategory.EHRS.iri)[:-4] + "XYZW"),
        )
    )
    with pytest.raises(GraphError, match="XYZW"):
        from_graph(g, dataset.iri)


def test_json_ld_expands_to_the_same_graph(dataset: Dataset) -> None:
    g = to_graph(dataset)
    doc = json.loads(serialize(g, JSON_LD))
    assert "@context" in doc  # compacted with our prefixes, no remote context
    assert all(isinstance(v, str) for v in doc["@context"].values())
    assert isomorphic(g, Graph().parse(data=json.dumps(doc), format="json-ld"))


def test_rdf_xml_parses_to_the_same_graph(dataset: Dataset) -> None:
    g = to_graph(dataset)
    assert isomorphic(g, Graph().parse(data=serialize(g, RDF_XML), format="xml"))


def test_golden_turtle(dataset: Dataset) -> None:
    golden = Graph().parse(GOLDEN, format="turtle")
    produced = to_graph(dataset)
    if not isomorphic(golden, produced):
        only_golden = to_isomorphic(golden) - to_isomorphic(produced)
        only_new = to_isomorphic(produced) - to_isomorphic(golden)
        pytest.fail(f"differs from golden: -{len(only_golden)} +{len(only_new)} triples")


def test_every_coded_iri_has_scheme_and_label(dataset: Dataset) -> None:
    g = to_graph(dataset)
    coded = {o for o in g.objects() if isinstance(o, URIRef) and str(o) in LABELS}
    assert len(coded) >= 8
    for iri in coded:
        assert g.value(iri, SKOS.inScheme) is not None, iri
        assert g.value(iri, SKOS.prefLabel) is not None, iri


def test_catalog_graph_lists_its_datasets(catalog: Catalog) -> None:
    g = to_graph(catalog)
    assert dataset_iris(g) == [d.iri for d in catalog.datasets]
    assert (URIRef(catalog.iri), DCAT.dataset, URIRef(catalog.datasets[0].iri)) in g
    assert g.value(URIRef(catalog.datasets[0].iri), DCTERMS.modified) is not None


def test_from_graph_refuses_what_is_not_a_dataset(dataset: Dataset) -> None:
    with pytest.raises(GraphError):
        from_graph(to_graph(dataset), dataset.iri + "/nope")
