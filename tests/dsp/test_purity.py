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
    core = [p for p in DSP.glob("*.py") if not p.name.startswith(("routes", "outbox", "store"))]
    assert len(core) >= 10
    for path in core:
        assert not (_imports(path) & BANNED), path.name
