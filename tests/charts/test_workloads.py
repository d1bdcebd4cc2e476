"""Deployment, probes, PDB, HPA, generated Secret, persistence and ServiceMonitor."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.charts.conftest import CHART, CI_VALUES, Helm, Manifest, ci_ids, find

CI = CHART / "ci"


@pytest.mark.parametrize("values_file", CI_VALUES, ids=ci_ids)
def test_probes_and_port(rendered: Callable[[Path], list[Manifest]], values_file: Path) -> None:
    (deployment,) = find(rendered(values_file), "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"][:1] == ["serve"]
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert len(annotations["checksum/config"]) == 64


def test_ha_uses_hpa_and_no_fixed_replicas(rendered: Callable[[Path], list[Manifest]]) -> None:
    docs = rendered(CI / "ha-values.yaml")
    (deployment,) = find(docs, "Deployment")
    (hpa,) = find(docs, "HorizontalPodAutoscaler")
    (pdb,) = find(docs, "PodDisruptionBudget")
    assert "replicas" not in deployment["spec"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu", "memory"]
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"] == {"name": "data", "emptyDir": {}}
    assert "strategy" not in deployment["spec"]
    assert not find(docs, "PersistentVolumeClaim")
    spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"][0]
    assert spread["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]


def test_minimal_keeps_data_and_recreates(rendered: Callable[[Path], list[Manifest]]) -> None:
    docs = rendered(CI / "minimal-values.yaml")
    (deployment,) = find(docs, "Deployment")
    (pvc,) = find(docs, "PersistentVolumeClaim")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert not find(docs, "HorizontalPodAutoscaler") and not find(docs, "ServiceMonitor")


@pytest.mark.parametrize("values_file", CI_VALUES, ids=ci_ids)
def test_generated_secret_is_kept_and_only_when_needed(
    rendered: Callable[[Path], list[Manifest]], values_file: Path
) -> None:
    docs = rendered(values_file)
    generated = find(docs, "Secret", "-generated")
    assert find(docs, "Secret") == generated  # the chart never templates a given secret
    (deployment,) = find(docs, "Deployment")
    refs = {
        (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        if "valueFrom" in e
    }
    if generated:
        (secret,) = generated
        assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert {(secret["metadata"]["name"], k) for k in secret["data"]} <= refs | {
            (secret["metadata"]["name"], "postgres-password")
        }
        assert all(len(v) >= 40 for v in secret["data"].values())


def test_bundled_postgresql(rendered: Callable[[Path], list[Manifest]]) -> None:
    docs = rendered(CI / "bundled-postgresql-values.yaml")
    (statefulset,) = find(docs, "StatefulSet")
    (secret,) = find(docs, "Secret", "-generated")
    assert set(secret["data"]) == {"management-api-key", "postgres-password"}
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "postgres-password"
    assert statefulset["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"] == {
        "storage": "8Gi"
    }
    services = {s["metadata"]["name"] for s in find(docs, "Service")}
    assert statefulset["spec"]["serviceName"] in services
    (deployment,) = find(docs, "Deployment")
    url = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert f"@{statefulset['spec']['serviceName']}:5432/phems" in url["PHEMS_DATABASE_URL"]["value"]


def test_service_monitor_scrapes_the_metrics_port(
    rendered: Callable[[Path], list[Manifest]],
) -> None:
    docs = rendered(CI / "everything-values.yaml")
    (monitor,) = find(docs, "ServiceMonitor")
    service = next(s for s in find(docs, "Service") if "postgresql" not in s["metadata"]["name"])
    labels = service["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["hospital"]}


def test_mounts_of_everything(rendered: Callable[[Path], list[Manifest]]) -> None:
    (deployment,) = find(rendered(CI / "everything-values.yaml"), "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m for m in spec["containers"][0]["volumeMounts"]}
    assert set(mounts) == {
        "/data",
        "/tmp",
        "/keys",
        "/credentials",
        "/fhir-auth",
        "/fhir-ca",
        "/fhir-files",
    }
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["keys"]["secret"]["items"] == [
        {"key": "ed25519.jwk", "path": "signing.jwk"},
        {"key": "x25519.jwk", "path": "key-agreement.jwk"},
    ]
    assert volumes["fhir-ca"]["configMap"]["name"] == "kinderklinik-ca"
    assert volumes["fhir-files"]["persistentVolumeClaim"]["readOnly"] is True
    assert spec["containers"][0]["image"].endswith(
        ":0.1.0@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    )
    assert spec["imagePullSecrets"] == [{"name": "registry-credentials"}]


def test_image_tag_defaults_to_app_version(helm: Helm) -> None:
    docs = helm.render(CI / "minimal-values.yaml")
    (deployment,) = find(docs, "Deployment")
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "ghcr.io/phems/phems-connector:0.1.0"


@pytest.mark.parametrize(
    ("sets", "secret_env", "mount"),
    [
        ([], set(), None),
        (["fhir.auth.type=bearer"], {"PHEMS_FHIR_TOKEN"}, None),
        (["fhir.auth.type=basic", "fhir.auth.username=phems"], {"PHEMS_FHIR_PASSWORD"}, None),
        (
            ["fhir.auth.type=smart", "fhir.auth.smart.clientId=c",
             "fhir.auth.smart.tokenUrl=https://auth.example/token"],
            set(),
            "/fhir-auth",
        ),
        (["fhir.caBundle.secret=hospital-ca"], set(), "/fhir-ca"),
    ],
)  # fmt: skip
def test_fhir_connection_variants(
    helm: Helm, sets: list[str], secret_env: set[str], mount: str | None
) -> None:
    docs = helm.render(CI / "minimal-values.yaml", sets=[*sets, "fhir.auth.existingSecret=fhir"])
    (deployment,) = find(docs, "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    env = {e["name"]: e for e in spec["containers"][0]["env"]}
    assert {n for n in env if n.startswith("PHEMS_FHIR_")} == secret_env
    for name in secret_env:
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "fhir"
    mounts = {m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
    assert mounts - {"/data", "/tmp"} == ({mount} if mount else set())
    volumes = {v["name"]: v for v in spec["volumes"]}
    if mount == "/fhir-ca":
        assert volumes["fhir-ca"]["secret"]["secretName"] == "hospital-ca"
        (configmap,) = find(docs, "ConfigMap")
        assert configmap["data"]["PHEMS_FHIR_CA_BUNDLE"] == "/fhir-ca/ca.crt"
    if mount == "/fhir-auth":
        assert volumes["fhir-auth"]["secret"]["items"] == [
            {"key": "smart-key.jwk", "path": "smart-key.jwk"}
        ]
