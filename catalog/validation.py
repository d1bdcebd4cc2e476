"""SHACL validation against the official HealthDCAT-AP R8 NON_PUBLIC shapes (on DCAT-AP 3.0.1).

Follows the official conformance recipe (the reference `validate_healthdcat.py` the tests keep
beside the repository) with the shape files shipped in this package (`catalog/shapes/`, CC BY
4.0: sources and attribution in `catalog/shapes/NOTICE.md`):

* DCAT-AP 3.0.1 `html-shacl/` base (`shapes.ttl`, `range.ttl`, `shapes_recommended.ttl`), which the
  HealthDCAT-AP files extend in place, then HealthDCAT-AP R8 `graph-guard.ttl`, `range.ttl`,
  `non-public-shapes.ttl`, `mdr-vocabularies.shape.ttl`, `non-public-shapes_recommended.ttl`;
* pySHACL rejects the R8 `sh:or` (hasStructuredData => hasVariables) placed in `sh:property`
  without `sh:path`; it is re-attached as a stand-alone NodeShape targeting dcat:Dataset;
* by default no vocabulary stand-in: our graphs carry their own concept triples ("strict mode").
  `nal_stand_in=True` adds the recipe's stand-in for EU/HealthData@EU authority IRIs, which the
  official example needs because it relies on the hosted validator's preloaded code lists.

The shapes directory defaults to the package's own `catalog/shapes/`, overridable with the
environment variable `PHEMS_SHACL_DIR` (a directory of the same layout) or the `shapes`
argument. The shapes graph is parsed once per directory and cached.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pyshacl
from rdflib import Graph, Literal, Namespace, URIRef
from rdflib.term import Node
from rdflib.util import guess_format

from catalog.vocab import DCAT, DCTERMS, RDF, SKOS

SH = Namespace("http://www.w3.org/ns/shacl#")
DEFAULT_SHAPES_DIR = Path(__file__).resolve().parent / "shapes"
BASE = "dcat-ap-3.0.1/html-shacl"
SHAPE_FILES = (
    f"{BASE}/shapes.ttl",
    f"{BASE}/range.ttl",
    f"{BASE}/shapes_recommended.ttl",
    "healthdcat-ap-r8/graph-guard.ttl",
    "healthdcat-ap-r8/range.ttl",
    "healthdcat-ap-r8/non-public-shapes.ttl",
    "healthdcat-ap-r8/mdr-vocabularies.shape.ttl",
    "healthdcat-ap-r8/non-public-shapes_recommended.ttl",
)
_NAL = re.compile(
    r"^(http://publications\.europa\.eu/resource/authority/[^/]+"
    r"|https://hdeu-dcat\.data\.health\.europa\.eu/resource/authority/[^/]+)/[^/]+$"
)


@dataclass(frozen=True, slots=True)
class Violation:
    """One SHACL result in plain words."""

    focus_node: str
    path: str | None
    message: str
    severity: str  # "Violation", "Warning" or "Info"

    def __str__(self) -> str:
        where = f" ({self.path})" if self.path else ""
        return f"{self.severity}: {self.focus_node}{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class ValidationReport:
    conforms: bool
    violations: list[Violation] = field(default_factory=list)
    warnings: list[Violation] = field(default_factory=list)


def shapes_dir() -> Path:
    return Path(os.environ.get("PHEMS_SHACL_DIR") or DEFAULT_SHAPES_DIR)


class ShapesNotFound(FileNotFoundError):
    """The SHACL shape files are not where ``PHEMS_SHACL_DIR`` (or the default) says."""


@cache
def load_shapes(directory: Path) -> Graph:
    """Parse the shape files once (per directory), with the pySHACL `sh:or` workaround."""
    missing = [name for name in SHAPE_FILES if not (directory / name).is_file()]
    if missing:
        raise ShapesNotFound(
            f"PHEMS_SHACL_DIR: the HealthDCAT-AP shapes are not in {directory} (missing "
            f"{', '.join(missing[:2])}{' and more' if len(missing) > 2 else ''}); set it to "
            "the directory holding dcat-ap-3.0.1/ and healthdcat-ap-r8/, or unset it to use "
            "the shapes shipped with the connector"
        )
    g = Graph()
    for name in SHAPE_FILES:
        g.parse(directory / name, format="turtle")
    for s, o in list(g.subject_objects(SH.property)):
        if g.value(o, SH.path) is None and (o, SH["or"], None) in g:
            g.remove((s, SH.property, o))
            g.add((o, RDF.type, SH.NodeShape))
            g.add((o, SH.targetClass, DCAT.Dataset))
    return g


def nal_stand_in(data: Graph) -> Graph:
    """The recipe's vocabulary stand-in: concept triples for every authority IRI used."""
    v = Graph()
    for o in set(data.objects()):
        m = _NAL.match(str(o)) if isinstance(o, URIRef) else None
        if m:
            scheme = URIRef(m.group(1))
            v.add((o, RDF.type, SKOS.Concept))
            v.add((o, SKOS.inScheme, scheme))
            v.add((o, SKOS.prefLabel, Literal(str(o).rsplit("/", 1)[-1], lang="en")))
            v.add((scheme, RDF.type, SKOS.ConceptScheme))
            v.add((scheme, DCTERMS.title, Literal(str(scheme).rsplit("/", 1)[-1])))
            if "/frequency/" in str(o):
                v.add((o, RDF.type, DCTERMS.Frequency))
    return v


def validate(
    graph: Graph, *, shapes: Path | None = None, nal_stand_in_vocabularies: bool = False
) -> ValidationReport:
    """Validate `graph`; `conforms` is False iff there is at least one sh:Violation."""
    shapes_graph = load_shapes((shapes or shapes_dir()).resolve())
    data = graph + nal_stand_in(graph) if nal_stand_in_vocabularies else graph
    _, report, _ = pyshacl.validate(
        data,
        shacl_graph=shapes_graph,
        inference="none",
        advanced=True,
        allow_warnings=True,
    )
    violations: list[Violation] = []
    warnings: list[Violation] = []
    # Only top-level results: pySHACL also types nested `sh:detail` results ValidationResult.
    for r in report.objects(None, SH.result):
        severity = str(report.value(r, SH.resultSeverity)).rsplit("#", 1)[-1]
        path = report.value(r, SH.resultPath)
        message = report.value(r, SH.resultMessage)
        item = Violation(
            focus_node=str(report.value(r, SH.focusNode)),
            path=None if path is None else str(path),
            message=str(message) if message is not None else _describe(report, r),
            severity=severity,
        )
        (violations if severity == "Violation" else warnings).append(item)
    key = lambda v: (v.focus_node, v.path or "", v.message)  # noqa: E731
    return ValidationReport(
        conforms=not violations,
        violations=sorted(violations, key=key),
        warnings=sorted(warnings, key=key),
    )


def _describe(report: Graph, result: Node) -> str:
    component = report.value(result, SH.sourceConstraintComponent)
    name = str(component).rsplit("#", 1)[-1] if component is not None else "constraint"
    return f"fails {name}"


def validate_file(path: str | Path, *, nal_stand_in_vocabularies: bool = False) -> ValidationReport:
    """Validate an RDF file (format guessed from its extension; Turtle by default)."""
    g = Graph().parse(str(path), format=guess_format(str(path)) or "turtle")
    return validate(g, nal_stand_in_vocabularies=nal_stand_in_vocabularies)


def format_report(report: ValidationReport, *, show_warnings: bool = False) -> str:
    """A report for people: one line per violation, then a summary line."""
    lines = [str(v) for v in report.violations]
    if show_warnings:
        lines += [str(w) for w in report.warnings]
    verdict = "conforms" if report.conforms else "does NOT conform"
    lines.append(
        f"HealthDCAT-AP R8 (NON_PUBLIC): {verdict}: "
        f"{len(report.violations)} violation(s), {len(report.warnings)} warning(s)"
    )
    return "\n".join(lines)
