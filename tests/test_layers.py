"""Import rules (STYLE.md §4): catalog imports nothing of ours; connector imports adapters only
in its composition root; jwcrypto only in the signing module."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# connector/synthetic/flatten.py builds flat views with adapters.sof for the synthetic CLI
# until the seam's view cache replaces it (then it goes, and this entry with it).
COMPOSITION_ROOT = {"connector/composition.py", "connector/synthetic/flatten.py"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _files(package: str) -> list[Path]:
    files = sorted((REPO / package).rglob("*.py"))
    assert files, f"no modules found in {package}/"
    return files


def test_catalog_imports_nothing_of_ours() -> None:
    offenders = [
        str(f.relative_to(REPO))
        for f in _files("catalog")
        if _imports(f) & {"connector", "adapters"}
    ]
    assert offenders == []


def test_connector_imports_adapters_only_in_composition_root() -> None:
    offenders = [
        str(f.relative_to(REPO))
        for f in _files("connector")
        if "adapters" in _imports(f) and str(f.relative_to(REPO)) not in COMPOSITION_ROOT
    ]
    assert offenders == []


def test_jwcrypto_only_in_signing_module() -> None:
    offenders = [
        str(f.relative_to(REPO))
        for package in ("connector", "catalog", "adapters")
        for f in _files(package)
        if "jwcrypto" in _imports(f) and f.name != "signing.py"
    ]
    assert offenders == []


def test_rule_checker_sees_violations(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from adapters.fhir import x\nimport connector.settings\n")
    assert _imports(bad) == {"adapters", "connector"}
