"""Every container of every pod the chart makes (connector, init container, bundled PostgreSQL,
helm test pod) runs restricted: non-root, no privilege escalation, read-only root filesystem,
all capabilities dropped, seccomp RuntimeDefault, no service account token."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.charts.conftest import CI_VALUES, Manifest, ci_ids, find, pod_specs

WRITABLE_CONNECTOR_MOUNTS = {"/data", "/tmp"}
WRITABLE_POSTGRES_MOUNTS = {"/var/lib/postgresql/data", "/var/run/postgresql", "/tmp"}


@pytest.mark.parametrize("values_file", CI_VALUES, ids=ci_ids)
def test_every_container_is_restricted(
    rendered: Callable[[Path], list[Manifest]], values_file: Path
) -> None:
    docs = rendered(values_file)
    seen = 0
    for name, spec in pod_specs(docs):
        assert spec["automountServiceAccountToken"] is False, name
        pod_ctx = spec["securityContext"]
        assert pod_ctx["runAsNonRoot"] is True, name
        assert pod_ctx["runAsUser"] > 0, name
        assert pod_ctx["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert "hostNetwork" not in spec and "hostPID" not in spec, name
        for container in spec.get("initContainers", []) + spec["containers"]:
            ctx = container["securityContext"]
            where = f"{name} container {container['name']}"
            assert ctx["runAsNonRoot"] is True, where
            assert ctx["allowPrivilegeEscalation"] is False, where
            assert ctx["readOnlyRootFilesystem"] is True, where
            assert ctx["privileged"] is False, where
            assert ctx["capabilities"] == {"drop": ["ALL"]}, where
            assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert "resources" in container and container["resources"]["limits"]["memory"], where
            seen += 1
    expected = {"connector", "wait-for-database", "check"}
    if any(d["kind"] == "StatefulSet" for d in docs):
        expected.add("postgresql")
    names = {
        c["name"] for _, s in pod_specs(docs) for c in s.get("initContainers", []) + s["containers"]
    }
    assert names == expected
    assert seen >= len(expected)


@pytest.mark.parametrize("values_file", CI_VALUES, ids=ci_ids)
def test_only_data_and_tmp_are_writable(
    rendered: Callable[[Path], list[Manifest]], values_file: Path
) -> None:
    for name, spec in pod_specs(rendered(values_file)):
        writable_ok = (
            WRITABLE_POSTGRES_MOUNTS if "postgresql" in name else WRITABLE_CONNECTOR_MOUNTS
        )
        for container in spec.get("initContainers", []) + spec["containers"]:
            for mount in container.get("volumeMounts", []):
                if not mount.get("readOnly", False):
                    assert mount["mountPath"] in writable_ok, (name, mount)


@pytest.mark.parametrize("values_file", CI_VALUES, ids=ci_ids)
def test_service_account_token_is_not_mounted(
    rendered: Callable[[Path], list[Manifest]], values_file: Path
) -> None:
    accounts = find(rendered(values_file), "ServiceAccount")
    assert len(accounts) == 1
    assert accounts[0]["automountServiceAccountToken"] is False
    assert not find(rendered(values_file), "Role") and not find(
        rendered(values_file), "RoleBinding"
    )


@pytest.mark.parametrize("values_file", CI_VALUES, ids=ci_ids)
def test_test_pod_checks_discovery_and_readiness(
    rendered: Callable[[Path], list[Manifest]], values_file: Path
) -> None:
    (pod,) = find(rendered(values_file), "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = pod["spec"]["containers"][0]["command"][-1]
    assert "/.well-known/dspace-version" in script and "/readyz" in script
    (service,) = [
        s
        for s in find(rendered(values_file), "Service")
        if "postgresql" not in s["metadata"]["name"]
    ]
    assert f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}" in script


def test_test_pod_script_is_valid_python(rendered: Callable[[Path], list[Manifest]]) -> None:
    for values_file in CI_VALUES:
        docs = rendered(values_file)
        (pod,) = find(docs, "Pod")
        compile(pod["spec"]["containers"][0]["command"][-1], "helm-test", "exec")
        (deployment,) = find(docs, "Deployment")
        init = deployment["spec"]["template"]["spec"]["initContainers"][0]
        compile(init["command"][-1], "wait-for-database", "exec")
