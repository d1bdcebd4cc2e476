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
