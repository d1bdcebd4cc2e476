"""The policy engine imports only the standard library, our errors, the JSON nesting check, the
clock's UTC helper, the output types and itself. An allow-list: the import-linter contract in
pyproject.toml can only forbid named packages (HTTP, database, web, crypto), not say "only"."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import connector.policy

PACKAGE = Path(connector.policy.__file__).parent


def test_policy_package_imports_only_stdlib_and_errors() -> None:
    # Each standard library only.
    allowed_ours = {
        "connector.errors",
        "connector.json_depth",
        "connector.clock",
        "catalog.formats",
    }
    for module in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(module.read_text(), filename=str(module))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                ours = name.startswith("connector.policy") or name in allowed_ours
                assert ours or top in sys.stdlib_module_names, f"{module.name} imports {name}"
