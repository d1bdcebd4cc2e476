"""The DSP core is pure: no web framework, database, HTTP client or crypto library in it."""

from __future__ import annotations

import ast
from pathlib import Path

import connector.dsp

BANNED = {
    "fastapi",
    "starlette",
    "sqlalchemy",
    "httpx",
    "aiohttp",
    "uvicorn",
    "jwcrypto",
    "adapters",
}
DSP = Path(connector.dsp.__file__).resolve().parent


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_core_modules_import_nothing_impure() -> None:
    core = sorted(DSP.rglob("*.py"))
    assert len(core) >= 15
    for path in core:
        assert not (_imports(path) & BANNED), path.name


def test_core_modules_import_nothing_of_the_layers_above() -> None:
    """The routes, services and stores build on the core, never the other way round."""
    above = ("connector.api", "connector.exchange", "connector.db", "connector.dataplane")
    for path in sorted(DSP.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        modules = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        modules |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        bad = {m for m in modules if any(m == a or m.startswith(a + ".") for a in above)}
        assert not bad, (path.name, bad)
