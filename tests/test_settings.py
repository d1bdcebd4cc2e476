"""Settings: defaults, environment, YAML/TOML config files, and errors that name the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("PHEMS_"):
            monkeypatch.delenv(key)


def test_defaults_are_embedded() -> None:
    s = load_settings()
    assert s.effective_database_url == "sqlite+aiosqlite:///phems-data/phems.db"
    assert s.effective_public_url == "http://127.0.0.1:8080"
    assert s.trusted_issuers == []


def test_environment_and_comma_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHEMS_TRUSTED_ISSUERS", "did:key:z1, did:web:authority.example")
    monkeypatch.setenv("PHEMS_INSECURE_DID_HOSTS", "127.0.0.1:8080")
    monkeypatch.setenv("PHEMS_DATABASE_URL", "postgresql://u@db/phems")
    s = load_settings()
    assert s.trusted_issuers == ["did:key:z1", "did:web:authority.example"]
    assert s.insecure_did_hosts == ["127.0.0.1:8080"]
    assert s.database_url == "postgresql+asyncpg://u@db/phems"


@pytest.mark.parametrize("suffix", [".yaml", ".toml"])
def test_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str) -> None:
    path = tmp_path / f"phems{suffix}"
    if suffix == ".yaml":
        path.write_text("port: 9090\ntrusted_issuers: [did:key:z1]\nparticipant_name: Kids\n")
    else:
        path.write_text(
            'port = 9090\ntrusted_issuers = ["did:key:z1"]\nparticipant_name = "Kids"\n'
        )
    monkeypatch.setenv("PHEMS_CONFIG_FILE", str(path))
    monkeypatch.setenv("PHEMS_PORT", "9191")  # the environment wins over the file
    s = load_settings()
    assert (s.port, s.trusted_issuers, s.participant_name) == (9191, ["did:key:z1"], "Kids")


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"PHEMS_DATABASE_URL": "mysql://x"}, "PHEMS_DATABASE_URL"),
        ({"PHEMS_PORT": "99999"}, "PHEMS_PORT"),
        ({"PHEMS_PUBLIC_URL": "ftp://x"}, "PHEMS_PUBLIC_URL"),
        ({"PHEMS_FHIR_SOURCE": "rest"}, "fhir_base_url"),
        ({"PHEMS_CONFIG_FILE": "/nonexistent.yaml"}, "PHEMS_CONFIG_FILE"),
        ({"PHEMS_TOKEN_LIFETIME_SECONDS": "3600"}, "PHEMS_TOKEN_LIFETIME_SECONDS"),
    ],
)
def test_bad_settings_name_the_setting(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], needle: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError, match=needle):
        load_settings()


def test_settings_reference_is_generated_from_the_current_settings() -> None:
    """docs/settings.md is what scripts/gen_settings_doc.py makes of connector/settings.py."""
    import subprocess
    import sys

    from tests.processes import REPO

    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_settings_doc.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    text = (REPO / "docs" / "settings.md").read_text()
    from connector.settings import OTHER_VARIABLES, Settings

    for name in [f"PHEMS_{n.upper()}" for n in Settings.model_fields] + list(OTHER_VARIABLES):
        assert f"| `{name}` |" in text, name


def test_the_reference_config_file_example_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import re

    from tests.processes import REPO

    text = (REPO / "docs" / "settings.md").read_text()
    [example] = re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)
    path = tmp_path / "phems.yaml"
    path.write_text(example)
    monkeypatch.setenv("PHEMS_CONFIG_FILE", str(path))
    s = load_settings()
    assert s.fhir_source == "rest" and s.trusted_issuers == ["did:web:authority.phems.example"]


@pytest.mark.parametrize(
    ("environ", "warnings"),
    [
        ({"PHEMS_PORT": "1", "PHEMS_CONFIG_FILE": "x", "PHEMS_SHACL_DIR": "y"}, []),
        ({"PHEMS_TEST_PG_URL": "x", "HOME": "/root"}, []),
        (
            {"PHEMS_PROT": "1"},
            ["PHEMS_PROT is not a setting and is ignored; did you mean PHEMS_PORT?"],
        ),
        (
            {"phems_fhir_base_ulr": "x"},
            [
                "phems_fhir_base_ulr is not a setting and is ignored; "
                "did you mean PHEMS_FHIR_BASE_URL?"
            ],
        ),
        ({"PHEMS_XYZZY": "1"}, ["PHEMS_XYZZY is not a setting and is ignored"]),
    ],
)
def test_unknown_variables(environ: dict[str, str], warnings: list[str]) -> None:
    from connector.settings import unknown_variables

    assert unknown_variables(environ) == warnings
