"""values.schema.json rejects wrong types and unknown keys; the templates reject combinations the
schema cannot express, each with a message that says what to change."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from tests.charts.conftest import CHART, CI_VALUES, Helm

MINIMAL = CHART / "ci" / "minimal-values.yaml"

# Objects whose inner structure is a Kubernetes type, checked by kubernetes-validate on the
# rendered manifests (test_render.py) rather than re-described in the chart's schema.
KUBERNETES_PASSTHROUGH = {
    "global": "Helm's own global values, shared with parent charts",
    "affinity.nodeAffinity": "core/v1 NodeAffinity",
    "affinity.podAffinity": "core/v1 PodAffinity",
    "affinity.podAntiAffinity": "core/v1 PodAntiAffinity",
}


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["replicaCount=two"], "replicaCount"),
        (["connector.logJson=yes"], "logJson"),
        (["connector.tokenLifetimeSeconds=3600"], "tokenLifetimeSeconds"),
        (["database.mode=sqlite"], "mode"),
        (["fhir.auth.type=kerberos"], "type"),
        (["connector.publicUrl=ftp://x.example"], "publicUrl"),
        (["image.digest=latest"], "digest"),
        (["resources.requests.memory=lots"], "memory"),
    ],
)
def test_wrong_type_or_value_is_rejected(helm: Helm, sets: list[str], message: str) -> None:
    done = helm.template(MINIMAL, sets=sets, check=False)
    assert done.returncode != 0
    assert "schema" in done.stderr and message in done.stderr, done.stderr


@pytest.mark.parametrize(
    "key",
    [
        "replicas",
        "connector.publicURL",
        "database.external.password",
        "ingress.public.host",
        "networkPolicy.egress",
        "fhir.auth.smart.secret",
        "resources.requests.gpu",
    ],
)
def test_unknown_key_is_rejected(helm: Helm, key: str) -> None:
    done = helm.template(MINIMAL, sets=[f"{key}=1"], check=False)
    assert done.returncode != 0
    assert key.rsplit(".", 1)[-1] in done.stderr, done.stderr
    lint = helm.run(
        "lint", "--strict", str(CHART), "-f", str(MINIMAL), "--set", f"{key}=1", check=False
    )
    assert lint.returncode != 0


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["connector.publicUrl="], "connector.publicUrl is required"),
        (["replicaCount=2"], "keys.existingSecret"),
        (["keys.existingSecret=k", "replicaCount=2"], "persistence"),
        (
            [
                "autoscaling.enabled=true",
                "keys.existingSecret=k",
                "persistence.enabled=false",
                "autoscaling.minReplicas=4",
                "autoscaling.maxReplicas=2",
            ],
            "maxReplicas",
        ),
        (["persistence.enabled=false"], "lost on every restart"),
        (["database.external.host="], "database.external.host is required"),
        (["database.external.existingSecret="], "database.external.existingSecret"),
        (["fhir.baseUrl="], "fhir.baseUrl is required"),
        (["fhir.auth.type=bearer"], "fhir.auth.existingSecret is required"),
        (["fhir.auth.type=smart", "fhir.auth.existingSecret=s"], "clientId"),
        (["fhir.caBundle.configMap=a", "fhir.caBundle.secret=b"], "at most one"),
        (["ingress.internal.enabled=true"], "ingress.internal.host is required"),
        (
            [
                "ingress.internal.enabled=true",
                "ingress.internal.host=connector.kinderklinik.example",
            ],
            "must differ",
        ),
    ],
)
def test_inconsistent_values_fail_with_a_message(helm: Helm, sets: list[str], message: str) -> None:
    done = helm.template(MINIMAL, sets=sets, check=False)
    assert done.returncode != 0
    assert message in done.stderr, done.stderr


def test_ci_values_files_exist() -> None:
    assert {p.name for p in CI_VALUES} == {
        "minimal-values.yaml",
        "bundled-postgresql-values.yaml",
        "ha-values.yaml",
        "everything-values.yaml",
    }


def objects(
    node: Mapping[str, Any], root: Mapping[str, Any], path: str
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    if "$ref" in node:
        target: Any = root
        for part in str(node["$ref"]).removeprefix("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    if node.get("type") == "object":
        yield path, node
    for name, child in node.get("properties", {}).items():
        yield from objects(child, root, f"{path}.{name}".lstrip("."))
    if isinstance(node.get("items"), Mapping):
        yield from objects(node["items"], root, f"{path}[]")
    if isinstance(node.get("additionalProperties"), Mapping):
        yield from objects(node["additionalProperties"], root, f"{path}.*")


def test_every_object_in_the_schema_closes_its_keys() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    open_objects = []
    for path, node in objects(schema, schema, ""):
        closed = node.get("additionalProperties") is False
        typed_map = (
            isinstance(node.get("additionalProperties"), Mapping) and "properties" not in node
        )
        if not (closed or typed_map) and path not in KUBERNETES_PASSTHROUGH:
            open_objects.append(path)
    assert open_objects == []
    assert schema["additionalProperties"] is False
