"""The chart README documents exactly the values of the schema (and of values.yaml)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import yaml

from tests.charts.conftest import CHART, REPO


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


def test_install_guide_links_exist() -> None:
    guide = (REPO / "docs" / "install.md").read_text()
    assert "charts/phems-connector" in guide
    for heading in (
        "Prerequisites",
        "Minimal values",
        "TLS",
        "FHIR server",
        "authority",
        "Upgrading",
        "Backup",
    ):
        assert heading in guide, heading
