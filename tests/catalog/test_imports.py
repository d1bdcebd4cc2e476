"""catalog/ is pure RDF: it imports nothing of ours (STYLE.md 4 and 11)."""

from __future__ import annotations

import ast
from pathlib import Path

CATALOG = Path(__file__).resolve().parents[2] / "catalog"
FORBIDDEN = ("connector", "adapters")


def test_catalog_imports_nothing_of_ours() -> None:
    offenders = []
    for path in CATALOG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []
    assert len(list(CATALOG.rglob("*.py"))) >= 10
