"""The import rules (STYLE.md §4) are import-linter contracts in pyproject.toml: the layer order,
the pure DSP core and policy engine, adapters only through the composition root, catalog
importing nothing of ours, jwcrypto only in the signing module. They hold for this tree, and
each one fails when an import breaks it (checked on a copy of the tree)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("connector", "catalog", "adapters")

CONTRACTS = 5
# Imports that break them, each contract at least once: (a new module, its import).
BREAKS = (
    ("connector/publishing/_bad.py", "import connector.api.deps"),  # layers: service -> HTTP
    ("connector/db/_bad.py", "import connector.exchange.remote"),  # infrastructure -> service
    ("connector/dsp/_bad.py", "import sqlalchemy"),  # the DSP core is pure
    ("connector/policy/_bad.py", "import httpx"),  # the policy engine is pure
    ("connector/exchange/_bad.py", "import adapters.fhir_factory"),  # adapters: composition only
    ("catalog/_bad.py", "import connector.errors"),  # catalog imports nothing of ours
    ("connector/identity/_bad.py", "import jwcrypto.jwk"),  # jwcrypto: the signing module only
)


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_import_contracts_hold() -> None:
    result = _lint(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {CONTRACTS} kept, 0 broken." in result.stdout


def test_each_contract_fails_when_an_import_breaks_it(tmp_path: Path) -> None:
    for package in PACKAGES:
        shutil.copytree(
            REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    for module, statement in BREAKS:
        (tmp_path / module).write_text(statement + "\n")

    result = _lint(tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    assert f"Contracts: 0 kept, {CONTRACTS} broken." in result.stdout
    for module, statement in BREAKS:
        importer = module.removesuffix(".py").replace("/", ".")
        imported = statement.removeprefix("import ")
        if imported.split(".")[0] not in PACKAGES:
            imported = imported.split(".")[0]  # external packages are reported by their name
        assert f"{importer} -> {imported}" in result.stdout, (importer, imported)
