"""The chart README documents exactly the values of the schema (and of values.yaml)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.charts.conftest import CHART, REPO, Helm


def readme_keys() -> list[str]:
    text = (CHART / "README.md").read_text()
    table = text.split("<!-- values:start", 1)[1].split("<!-- values:end -->", 1)[0]
    return re.findall(r"^\| `([^`]+)` \|", table, flags=re.MULTILINE)


def schema_paths(
    node: Mapping[str, Any], root: Mapping[str, Any], prefix: str = ""
) -> Iterator[str]:
    if "$ref" in node:
        target: Any = root
        for part in str(node["$ref"]).removeprefix("#/").split("/"):
            target = target[part]
        node = {**target, **node}
    for name, child in node.get("properties", {}).items():
        key = f"{prefix}{name}"
        yield key
        yield from schema_paths(child, root, f"{key}.")


def value_paths(node: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    for name, child in node.items():
        key = f"{prefix}{name}"
        yield key
        if isinstance(child, Mapping) and child:
            yield from value_paths(child, f"{key}.")


def covers(row: str, path: str) -> bool:
    return path == row or path.startswith(f"{row}.") or row.startswith(f"{path}.")


def test_readme_is_generated_from_the_current_schema() -> None:
    done = subprocess.run(
        [sys.executable, str(CHART / "gen_readme.py"), "--check"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_every_documented_value_is_in_the_schema_and_back() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    documented = readme_keys()
    assert len(documented) == len(set(documented))
    known = set(schema_paths(schema, schema))
    assert set(documented) <= known, set(documented) - known
    # Every schema value is a row, a group of rows, or inside a pass-through object's row.
    undocumented = {p for p in known if not any(covers(d, p) for d in documented)}
    assert undocumented == set()


def test_every_default_in_values_yaml_is_documented() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    documented = set(readme_keys())
    paths = set(value_paths(values))
    for path in paths:
        assert any(covers(d, path) for d in documented), path
    # and every documented value has its default in values.yaml
    assert documented <= paths, documented - paths


def test_install_guide_covers_the_steps() -> None:
    guide = (REPO / "docs" / "install.md").read_text().lower()
    assert "charts/phems-connector" in guide
    for topic in (
        "prerequisites",
        "minimal values",
        "tls",
        "fhir server",
        "authority issue",
        "upgrading",
        "backup",
        "$(database_password)",
    ):
        assert topic in guide, topic


def yaml_blocks(text: str) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)


def test_documented_minimal_values_files_install(helm: Helm, tmp_path: Path) -> None:
    guide = (REPO / "docs" / "install.md").read_text()
    minimal_in_guide = yaml_blocks(guide.split("## 3.", 1)[1])[0]
    minimal_in_readme = yaml_blocks((CHART / "README.md").read_text())[0]
    for number, block in enumerate((minimal_in_guide, minimal_in_readme)):
        values = tmp_path / f"doc-{number}.yaml"
        values.write_text(block)
        docs = helm.render(values)
        assert any(d["kind"] == "Ingress" for d in docs)


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        old = out.get(key)
        both = isinstance(old, dict) and isinstance(value, dict)
        out[key] = deep_merge(old, value) if both else value  # type: ignore[arg-type]
    return out


def test_every_values_snippet_of_the_guide_renders(helm: Helm, tmp_path: Path) -> None:
    """Each snippet, on top of the minimal values file, passes the schema and the templates."""
    guide = (REPO / "docs" / "install.md").read_text()
    blocks = [yaml.safe_load(b) for b in yaml_blocks(guide)]
    assert len(blocks) >= 5
    minimal = blocks[0]
    for number, snippet in enumerate(blocks[1:]):
        values = tmp_path / f"snippet-{number}.yaml"
        values.write_text(yaml.safe_dump(deep_merge(minimal, snippet)))
        assert helm.render(values), snippet
