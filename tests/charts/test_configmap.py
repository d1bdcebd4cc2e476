"""The ConfigMap carries one PHEMS_* key per setting of connector.settings.Settings; the
secret settings come from Secrets; and what the chart renders is accepted by the real settings
class for every ci/ values file."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

from connector.settings import Settings
from tests.charts.conftest import CHART, CI_VALUES, Manifest, ci_ids, find

CI = CHART / "ci"

# Settings that are never in the ConfigMap, and why.
FROM_SECRETS = {
    "database_url": "holds the database password: composed in the pod from a Secret-backed "
    "variable, or read whole from database.external.urlSecret",
    "management_api_key": "SecretStr: from managementApi.existingSecret or the generated Secret",
    "fhir_token": "SecretStr: from fhir.auth.existingSecret, only when fhir.auth.type is bearer",
    "fhir_password": "SecretStr: from fhir.auth.existingSecret, only when fhir.auth.type is basic",
}
NOT_SET = {
    "signing_key_file": "both keys are mounted under keys_dir with the names the app expects",
    "key_agreement_key_file": "both keys are mounted under keys_dir with the names the app expects",
}
# Optional paths: an empty environment variable would be read as Path("."), so the key is only
# present when the feature is configured.
Condition = Callable[[dict[str, Any]], bool]
ONLY_WHEN_SET: dict[str, Condition] = {
    "fhir_smart_key_file": lambda v: v["fhir"]["auth"]["type"] == "smart",
    "fhir_ca_bundle": lambda v: bool(
        v["fhir"]["caBundle"]["configMap"] or v["fhir"]["caBundle"]["secret"]
    ),
}
SECRET_ONLY_WHEN: dict[str, Condition] = {
    "fhir_token": lambda v: v["fhir"]["auth"]["type"] == "bearer",
    "fhir_password": lambda v: v["fhir"]["auth"]["type"] == "basic",
}


def env_name(field: str) -> str:
    return f"PHEMS_{field.upper()}"


def merged_values(values_file: Path) -> dict[str, Any]:
    def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
        out = dict(base)
        for key, value in over.items():
            old = out.get(key)
            out[key] = (
                merge(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
            )
        return out

    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    return merge(defaults, yaml.safe_load(values_file.read_text()))


def connector_container(docs: list[Manifest]) -> Manifest:
    (deployment,) = find(docs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def test_exceptions_name_real_fields() -> None:
    fields = set(Settings.model_fields)
    assert set(FROM_SECRETS) | set(NOT_SET) | set(ONLY_WHEN_SET) <= fields
    secret_fields = {
        n for n, f in Settings.model_fields.items() if "SecretStr" in str(f.annotation)
    }
    assert secret_fields <= set(FROM_SECRETS)


@pytest.mark.parametrize("values_file", CI_VALUES, ids=ci_ids)
def test_configmap_keys_and_secret_env_are_exactly_the_settings(
    rendered: Callable[[Path], list[Manifest]], values_file: Path
) -> None:
    docs = rendered(values_file)
    values = merged_values(values_file)
    (configmap,) = find(docs, "ConfigMap")
    container = connector_container(docs)
    secret_env = {e["name"] for e in container["env"] if e["name"].startswith("PHEMS_")}

    expected_configmap = {
        env_name(f)
        for f in Settings.model_fields
        if f not in FROM_SECRETS
        and f not in NOT_SET
        and (f not in ONLY_WHEN_SET or ONLY_WHEN_SET[f](values))
    }
    expected_secret = {
        env_name(f)
        for f in FROM_SECRETS
        if f not in SECRET_ONLY_WHEN or SECRET_ONLY_WHEN[f](values)
    }
    assert set(configmap["data"]) == expected_configmap
    assert secret_env == expected_secret
    assert not set(configmap["data"]) & secret_env
    assert container["envFrom"] == [{"configMapRef": {"name": configmap["metadata"]["name"]}}]
    for entry in container["env"]:
        if entry["name"] != "PHEMS_DATABASE_URL" or "valueFrom" in entry:
            assert "secretKeyRef" in entry["valueFrom"], entry


def test_everything_values_render_every_configmap_setting(
    rendered: Callable[[Path], list[Manifest]],
) -> None:
    (configmap,) = find(rendered(CI / "everything-values.yaml"), "ConfigMap")
    expected = {
        env_name(f) for f in Settings.model_fields if f not in FROM_SECRETS | NOT_SET.keys()
    }
    assert set(configmap["data"]) == expected


def pod_environment(docs: list[Manifest]) -> dict[str, str]:
    """The environment the connector process sees: ConfigMap, then env with Secrets replaced by
    placeholders and $(VAR) expanded the way the kubelet does."""
    (configmap,) = find(docs, "ConfigMap")
    env: dict[str, str] = dict(configmap["data"])
    for entry in connector_container(docs)["env"]:
        if "valueFrom" in entry:
            ref = entry["valueFrom"]["secretKeyRef"]
            if entry["name"] == "PHEMS_DATABASE_URL":
                env[entry["name"]] = "postgresql+asyncpg://u:p@db.example:5432/phems"
            else:
                env[entry["name"]] = f"secret-{ref['name']}-{ref['key']}"
        else:
            env[entry["name"]] = re.sub(
                r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m[1], m[0]), entry["value"]
            )
    return env


@pytest.mark.parametrize("values_file", CI_VALUES, ids=ci_ids)
def test_settings_class_accepts_the_rendered_environment(
    rendered: Callable[[Path], list[Manifest]], values_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("PHEMS_"):
            monkeypatch.delenv(name)
    env = pod_environment(rendered(values_file))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    values = merged_values(values_file)

    url = make_url(settings.database_url)
    assert url.drivername == "postgresql+asyncpg"
    assert url.password and url.host and url.database
    assert str(settings.data_dir) == "/data"
    assert settings.public_url == str(values["connector"]["publicUrl"]).rstrip("/")
    assert settings.management_api_key is not None
    assert settings.host == "0.0.0.0" and settings.port == 8080
    assert settings.signing_key_file is None and settings.key_agreement_key_file is None
    assert settings.effective_keys_dir in (Path("/keys"), Path("/data/keys"))
    if settings.fhir_ca_bundle is not None:
        assert settings.fhir_ca_bundle.parent == Path("/fhir-ca")
    assert (settings.fhir_smart_key_file is not None) == (settings.fhir_auth == "smart")
    assert (settings.fhir_token is not None) == (settings.fhir_auth == "bearer")


def test_database_url_is_composed_from_the_password_secret(
    rendered: Callable[[Path], list[Manifest]],
) -> None:
    env = connector_container(rendered(CI / "everything-values.yaml"))["env"]
    names = [e["name"] for e in env]
    password = env[names.index("DATABASE_PASSWORD")]
    url = env[names.index("PHEMS_DATABASE_URL")]
    assert names.index("DATABASE_PASSWORD") < names.index("PHEMS_DATABASE_URL")
    assert password["valueFrom"]["secretKeyRef"] == {"name": "phems-db", "key": "pg-password"}
    assert url["value"] == (
        "postgresql+asyncpg://phems_app:$(DATABASE_PASSWORD)@10.20.30.40:5433/phems_prod"
        "?ssl=verify-full"
    )
