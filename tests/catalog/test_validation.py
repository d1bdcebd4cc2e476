"""SHACL validation with the official HealthDCAT-AP R8 NON_PUBLIC shapes (shapes parsed once)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rdflib import Graph, Literal, URIRef

from catalog import validation
from catalog.model import Catalog, Dataset
from catalog.rdf import to_graph
from catalog.validation import (
    DEFAULT_SHAPES_DIR,
    SHAPE_FILES,
    format_report,
    load_shapes,
    validate,
    validate_file,
)
from catalog.vocab import HEALTHDCATAP, XSD

OFFICIAL_EXAMPLE = "conformance/examples/healthdcat-ap-r8_example-healthdcat-dataset.ttl"


def _paths(report_items: list[object]) -> set[str]:
    return {str(getattr(v, "path", None)) for v in report_items}


def test_example_dataset_conforms_in_strict_mode(dataset: Dataset) -> None:
    # Served Turtle, parsed back: exactly what a harvester validates.
    g = Graph().parse(data=to_graph(dataset).serialize(format="turtle"), format="turtle")
    report = validate(g)
    assert report.conforms, format_report(report)
    assert report.violations == []
    # README: a catalogue serving its own concept triples passes both modes.
    assert validate(g, nal_stand_in_vocabularies=True).conforms


def test_example_catalog_conforms(catalog: Catalog) -> None:
    report = validate(to_graph(catalog))
    assert report.conforms, format_report(report)


def test_missing_hdab_is_a_violation(dataset: Dataset) -> None:
    g = to_graph(dataset)
    g.remove((URIRef(dataset.iri), HEALTHDCATAP.hdab, None))
    report = validate(g)
    assert not report.conforms
    hdab = [v for v in report.violations if v.path == str(HEALTHDCATAP.hdab)]
    assert hdab and "exactly one healthdcatap:hdab" in hdab[0].message
    assert hdab[0].focus_node == dataset.iri


def test_number_of_records_as_plain_literal_is_a_violation(dataset: Dataset) -> None:
    g = to_graph(dataset)
    s = URIRef(dataset.iri)
    g.remove((s, HEALTHDCATAP.numberOfRecords, None))
    g.add((s, HEALTHDCATAP.numberOfRecords, Literal("48210")))
    report = validate(g)
    assert not report.conforms
    assert [v for v in report.violations if v.path == str(HEALTHDCATAP.numberOfRecords)]
    # The typed value is fine: only the datatype makes the difference.
    g.set((s, HEALTHDCATAP.numberOfRecords, Literal(48210, datatype=XSD.nonNegativeInteger)))
    assert validate(g).conforms


def test_unknown_health_category_is_a_violation(dataset: Dataset) -> None:
    g = to_graph(dataset)
    unknown = URIRef(
        "https://hdeu-dcat.data.health.europa.eu/resource/authority/healthcategories/XYZW"
    )
    g.add((URIRef(dataset.iri), HEALTHDCATAP.healthCategory, unknown))
    report = validate(g)
    assert not report.conforms
    msgs = [v.message for v in report.violations if v.path == str(HEALTHDCATAP.healthCategory)]
    assert any("health category" in m for m in msgs), msgs


def test_official_example_conforms_with_same_shapes(shared_dir: Path) -> None:
    # The official example relies on the hosted validator's code lists (README section 4):
    # it conforms with the recipe's vocabulary stand-in, and does not in strict mode.
    path = shared_dir / OFFICIAL_EXAMPLE
    report = validate_file(path, nal_stand_in_vocabularies=True)
    assert report.conforms, format_report(report)
    assert len(report.warnings) == 3
    assert not validate_file(path).conforms


def test_empty_graph_trips_the_graph_guard() -> None:
    report = validate(Graph())
    assert not report.conforms
    assert any("at least one dcat:Dataset" in v.message for v in report.violations)


def test_format_report_in_plain_words(dataset: Dataset) -> None:
    g = to_graph(dataset)
    g.remove((URIRef(dataset.iri), HEALTHDCATAP.hdab, None))
    text = format_report(validate(g))
    assert "does NOT conform" in text
    assert f"Violation: {dataset.iri} ({HEALTHDCATAP.hdab})" in text


def test_shapes_dir_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PHEMS_SHACL_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError):
        validate(Graph())


def test_shapes_are_parsed_once(shared_dir: Path) -> None:
    directory = (shared_dir / "conformance/shacl").resolve()
    assert load_shapes(directory) is load_shapes(directory)


def test_shipped_shapes_are_the_conformance_copies(shared_dir: Path) -> None:
    """The package's shapes (the default) are byte for byte the third-party files the
    project's conformance material holds, with their attribution beside them."""
    assert DEFAULT_SHAPES_DIR == Path(validation.__file__).parent / "shapes"
    for name in SHAPE_FILES:
        shipped = (DEFAULT_SHAPES_DIR / name).read_bytes()
        assert shipped == (shared_dir / "conformance/shacl" / name).read_bytes(), name
    notice = (DEFAULT_SHAPES_DIR / "NOTICE.md").read_text()
    for words in ("CC BY 4.0", "SEMICeu/DCAT-AP", "healthdcat-ap", "unmodified"):
        assert words in notice, words
