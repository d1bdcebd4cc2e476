"""helm lint --strict and helm template over every ci/ values file; every manifest is valid
Kubernetes (strict schema of a current version); NOTES.txt prints the DID and the URLs."""

from __future__ import annotations

import json
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from tests.charts.conftest import (
    CHART,
    CI_VALUES,
    KUBERNETES_VERSIONS,
    Helm,
    Manifest,
    ci_ids,
    helm_of,
)

# Custom resources: kubernetes-validate knows only built-in kinds; checked in test_workloads.py.
CUSTOM_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}


@pytest.mark.parametrize("values_file", CI_VALUES, ids=ci_ids)
def test_lint_strict(helm: Helm, values_file: Path) -> None:
    done = helm.run("lint", "--strict", str(CHART), "-f", str(values_file))
    assert "0 chart(s) failed" in done.stdout, done.stdout


@pytest.mark.parametrize("kubernetes", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("values_file", CI_VALUES, ids=ci_ids)
def test_manifests_are_valid_kubernetes(
    rendered: Callable[[Path], list[Manifest]], values_file: Path, kubernetes: str
) -> None:
    docs = rendered(values_file)
    assert {"Deployment", "Service", "ConfigMap"} <= {d["kind"] for d in docs}
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, kubernetes, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message} at {exc.path}")


def test_every_kind_is_rendered_somewhere(rendered: Callable[[Path], list[Manifest]]) -> None:
    kinds = {d["kind"] for values_file in CI_VALUES for d in rendered(values_file)}
    assert kinds >= {
        "Deployment",
        "Service",
        "ConfigMap",
        "Secret",
        "PersistentVolumeClaim",
        "Ingress",
        "StatefulSet",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "ServiceAccount",
        "ServiceMonitor",
        "Pod",
    }


def expected_did(public_url: str) -> str:
    parts = urlsplit(public_url)
    host = parts.netloc.replace(":", "%3A")
    return ":".join(["did:web", host, *[p for p in parts.path.split("/") if p]])


NOTES_HARNESS = """apiVersion: v1
kind: ConfigMap
metadata:
  name: notes
data:
  notes: {{ tpl (.Files.Get "notes-source.txt") . | quote }}
"""


def render_notes(helm: Helm, tmp_path: Path, *args: str) -> str:
    """NOTES.txt as Helm renders it. Helm 3 cannot install --dry-run without a cluster, so a
    copy of the chart renders NOTES.txt through tpl (same context, same helpers)."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    # .Files cannot read templates/, so the harness reads a copy at the chart's root.
    shutil.copy(chart / "templates" / "NOTES.txt", chart / "notes-source.txt")
    (chart / "templates" / "notes-harness.yaml").write_text(NOTES_HARNESS)
    done = helm.run(
        "template",
        "phems",
        str(chart),
        "-n",
        "hospital",
        *args,
        "--show-only",
        "templates/notes-harness.yaml",
    )
    return str(yaml.safe_load(done.stdout)["data"]["notes"])


@pytest.mark.parametrize("values_file", CI_VALUES, ids=ci_ids)
def test_notes_print_did_and_public_urls(helm: Helm, values_file: Path, tmp_path: Path) -> None:
    notes = render_notes(helm, tmp_path, "-f", str(values_file))
    public_url = yaml.safe_load(values_file.read_text())["connector"]["publicUrl"].rstrip("/")
    assert f"DID: {expected_did(public_url)}\n" in notes
    for path in ("/.well-known/did.json", "/.well-known/dspace-version", "/dsp/2025-1"):
        assert f"{public_url}{path}" in notes
    assert "helm test phems -n hospital" in notes
    assert "MembershipCredential" in notes


def test_did_of_a_port_and_trailing_slash(helm: Helm, tmp_path: Path) -> None:
    notes = render_notes(
        helm,
        tmp_path,
        "-f",
        str(CI_VALUES[0]),
        "--set",
        "connector.publicUrl=https://dsp.klinik.example:8443/",
    )
    assert "DID: did:web:dsp.klinik.example%3A8443\n" in notes
    assert expected_did("https://h.example:8443/a/b") == "did:web:h.example%3A8443:a:b"


def test_helm4_install_dry_run_prints_notes() -> None:
    """The real thing where it works offline: Helm 3's install --dry-run needs a cluster."""
    done = helm_of("4").run(
        "install",
        "phems",
        str(CHART),
        "-n",
        "hospital",
        "-f",
        str(CI_VALUES[0]),
        "--dry-run=client",
    )
    assert "DID: did:web:" in done.stdout.split("NOTES:", 1)[1]


def test_the_validator_catches_a_broken_manifest(
    rendered: Callable[[Path], list[Manifest]],
) -> None:
    (deployment,) = [d for d in rendered(CI_VALUES[0]) if d["kind"] == "Deployment"]
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRoot"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


def test_kube_version_floor(helm: Helm) -> None:
    values = ["-f", str(CI_VALUES[0])]
    helm.run("template", "phems", str(CHART), *values, "--kube-version", "1.27.0")
    old = helm.run(
        "template", "phems", str(CHART), *values, "--kube-version", "1.26.0", check=False
    )
    assert old.returncode != 0 and "kubeVersion" in old.stderr


def test_package_contains_the_chart_not_the_generator(helm: Helm, tmp_path: Path) -> None:
    helm.run("package", str(CHART), "--destination", str(tmp_path))
    (archive,) = tmp_path.glob("phems-connector-*.tgz")
    with tarfile.open(archive) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames()}
    assert {
        "Chart.yaml",
        "values.yaml",
        "values.schema.json",
        "README.md",
        "templates/NOTES.txt",
        "templates/tests/test-connection.yaml",
    } <= names
    assert "gen_readme.py" not in names


@pytest.mark.parametrize("values_file", CI_VALUES, ids=ci_ids)
def test_rendered_text_is_tidy(helm: Helm, values_file: Path) -> None:
    text = helm.template(values_file).stdout
    untidy = [line for line in text.splitlines() if line != line.rstrip()]
    assert untidy == []
