"""Errors a person can act on: each bad setting, store or file gives exit code 2 and one line
on stderr that names what to change, never a traceback; read-only commands never make a
connector where there is none. Commands run in-process through the CLI's entry point (an
uncaught exception would fail the test); `serve`, which configures logging and starts work,
in a subprocess as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

from connector.cli import main
from tests.cli.stores import make_store
from tests.conftest import free_port, fresh_pg_database
from tests.processes import REPO, connector_env, running_connector


@dataclass
class Run:
    code: int
    out: str
    err: str

    def one_line_error(self, *needles: str) -> str:
        assert self.code == 2, (self.code, self.err)
        lines = [line for line in self.err.splitlines() if line.strip()]
        assert len(lines) == 1, self.err
        assert lines[0].startswith("error: ") and "Traceback" not in self.err
        for needle in needles:
            assert needle in lines[0], lines[0]
        return lines[0]


class Cli(Protocol):
    def __call__(self, *args: str, env: dict[str, str] | None = None) -> Run: ...


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    """Run ``phems-connector ARGS`` in ``tmp_path`` with only the given PHEMS_* variables."""
    for key in list(os.environ):
        if key.upper().startswith("PHEMS_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)

    def run(*args: str, env: dict[str, str] | None = None) -> Run:
        with monkeypatch.context() as m:
            for key, value in (env or {}).items():
                m.setenv(key, value)
            m.setattr(sys, "argv", ["phems-connector", *args])
            capsys.readouterr()
            with pytest.raises(SystemExit) as exit_:
                main()
        captured = capsys.readouterr()
        return Run(int(exit_.value.code or 0), captured.out, captured.err)

    return run


def serve(tmp_path: Path, env: dict[str, str]) -> Run:
    base = connector_env(tmp_path / "data", free_port())
    done = subprocess.run(
        [sys.executable, "-m", "connector", "serve"],
        env=base | env,
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=120,
    )
    return Run(done.returncode, done.stdout, done.stderr)


# -- the store ------------------------------------------------------------------------------


def test_unknown_postgresql_role(tmp_path: Path, pg_url: str) -> None:
    url = pg_url.replace("postgres@", "no_such_role@")
    serve(tmp_path, {"PHEMS_DATABASE_URL": url}).one_line_error(
        "PHEMS_DATABASE_URL", 'role "no_such_role" does not exist', "user name"
    )


def test_unknown_postgresql_database(tmp_path: Path, pg_url: str) -> None:
    url = pg_url.rsplit("/", 1)[0] + "/no_such_database"
    serve(tmp_path, {"PHEMS_DATABASE_URL": url}).one_line_error(
        "PHEMS_DATABASE_URL", 'database "no_such_database" does not exist', "createdb"
    )


def test_corrupt_sqlite_store(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "phems.db").write_bytes(b"this is not a database, it was overwritten" * 100)
    serve(tmp_path, {}).one_line_error(
        "phems.db is not a usable SQLite database", "restore it from a backup"
    )


def test_psycopg_is_refused_with_the_url_to_use(cli: Cli) -> None:
    cli("keys", "init", env={"PHEMS_DATABASE_URL": "postgresql+psycopg://u@db/x"}).one_line_error(
        "PHEMS_DATABASE_URL", "psycopg driver is not supported", "postgresql+asyncpg://"
    )


# -- settings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "needles"),
    [
        ("bad.yaml", "port: [\n", ("not valid YAML", "line 2, column 1")),
        ("bad.yml", "a: b\n  c: d\n", ("not valid YAML", "mapping values", "line 2")),
        ("bad.toml", "port = \n", ("not valid TOML", "line 1, column 8")),
        ("list.yaml", "- port\n- 8080\n", ("keys and values", "not a list")),
        ("typo.yaml", "prot: 8080\n", ("unknown setting 'prot'", "did you mean port?")),
        ("binary.toml", "\udcff", ("cannot read",)),
    ],
)
def test_malformed_config_file(
    cli: Cli, tmp_path: Path, name: str, text: str, needles: tuple[str, ...]
) -> None:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    cli("keys", "init", env={"PHEMS_CONFIG_FILE": str(path)}).one_line_error(
        "PHEMS_CONFIG_FILE", *needles
    )
    assert not (tmp_path / "phems-data").exists()


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://exa mple.org", "not a valid host name"),
        ("http://exa_mple.org", "not a valid host name"),
        ("https://connector.example:99999", "not a valid port"),
        ("https://user@connector.example", "no user"),
        ("https://connector.example/?x=1", "query"),
        ("connector.example", "not an http(s) URL"),
    ],
)
def test_bad_public_url(cli: Cli, url: str, words: str) -> None:
    cli("keys", "init", env={"PHEMS_PUBLIC_URL": url}).one_line_error("PHEMS_PUBLIC_URL", words)


def test_good_public_urls_are_kept(cli: Cli) -> None:
    for url, did in (
        ("https://Connector.Kinderklinik.example", "did:web:connector.kinderklinik.example"),
        ("http://127.0.0.1:8081", "did:web:127.0.0.1%3A8081"),
        ("https://hospital.example/connectors/a/", "did:web:hospital.example:connectors:a"),
        ("http://[::1]:8080", "did:web:%5B%3A%3A1%5D%3A8080"),
    ):
        made = cli("keys", "init", env={"PHEMS_PUBLIC_URL": url})
        assert made.code == 0, made.err
        assert json.loads(made.out)["did"] == did


@pytest.mark.parametrize("port", ["99999", "-1", "eighty"])
def test_port_out_of_range(cli: Cli, port: str) -> None:
    cli("keys", "init", env={"PHEMS_PORT": port}).one_line_error("PHEMS_PORT")
    if port != "eighty":
        cli("serve", "--port", port).one_line_error("PHEMS_PORT")


@pytest.mark.parametrize("value", ["not-a-did", "did:web:ok.example,authority", "did:example:x"])
def test_trusted_issuers_must_be_dids(cli: Cli, value: str) -> None:
    cli("keys", "init", env={"PHEMS_TRUSTED_ISSUERS": value}).one_line_error(
        "PHEMS_TRUSTED_ISSUERS", "is not an issuer DID", "did:web:<host> or did:key:z"
    )


def test_empty_management_api_key_setting(cli: Cli) -> None:
    for value in ("", "   "):
        cli("keys", "init", env={"PHEMS_MANAGEMENT_API_KEY": value}).one_line_error(
            "PHEMS_MANAGEMENT_API_KEY", "empty", "unset the variable"
        )


def test_empty_management_api_key_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "management-api-key").write_text("\n")
    serve(tmp_path, {}).one_line_error(
        "PHEMS_DATA_DIR", "management-api-key is empty", "delete it to have a new one generated"
    )


def test_a_misspelt_variable_is_named_with_the_setting_meant(
    cli: Cli,
) -> None:
    env = {"PHEMS_PUBLC_URL": "https://x.example", "PHEMS_TEST_PG_URL": "ignored", "PHEMS_Q": "1"}
    made = cli("keys", "init", env=env)
    assert made.code == 0
    assert made.err.splitlines() == [
        "warning: PHEMS_PUBLC_URL is not a setting and is ignored; did you mean PHEMS_PUBLIC_URL?",
        "warning: PHEMS_Q is not a setting and is ignored",
    ]


def test_serve_warns_of_typos_and_an_empty_trust_list(tmp_path: Path) -> None:
    with running_connector(tmp_path / "data", free_port(), {"PHEMS_LOG_LEVL": "DEBUG"}) as c:
        pass
    warnings = [
        json.loads(line)["msg"]
        for line in c.log().splitlines()
        if line.startswith("{") and json.loads(line)["level"] == "WARNING"
    ]
    assert any("PHEMS_LOG_LEVL" in w and "did you mean PHEMS_LOG_LEVEL?" in w for w in warnings)
    assert any(w.startswith("PHEMS_TRUSTED_ISSUERS is empty") for w in warnings), warnings


# -- read-only commands ---------------------------------------------------------------------

READ_ONLY = [("audit", "verify"), ("audit", "export"), ("keys", "show"), ("catalog", "validate")]


@pytest.mark.parametrize("args", READ_ONLY, ids=" ".join)
def test_read_only_commands_refuse_without_a_data_directory(
    cli: Cli, tmp_path: Path, args: tuple[str, ...]
) -> None:
    cli(*args).one_line_error("PHEMS_DATA_DIR", "phems-data does not exist")
    assert not (tmp_path / "phems-data").exists()


@pytest.mark.parametrize("args", [a for a in READ_ONLY if a[0] != "keys"], ids=" ".join)
def test_read_only_commands_refuse_a_directory_without_a_store(
    cli: Cli, tmp_path: Path, args: tuple[str, ...]
) -> None:
    (tmp_path / "phems-data").mkdir()
    cli(*args).one_line_error("holds no connector store (phems.db)", "start the connector once")
    assert list((tmp_path / "phems-data").iterdir()) == []


def test_keys_show_refuses_without_keys(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "phems-data").mkdir()
    cli("keys", "show").one_line_error("PHEMS_KEYS_DIR", "no signing.jwk", "keys init")
    assert list((tmp_path / "phems-data").iterdir()) == []


def test_read_only_commands_refuse_an_empty_postgresql_database(cli: Cli, pg_url: str) -> None:
    with fresh_pg_database(pg_url, "phems_readonly") as url:
        for args in READ_ONLY[:2] + READ_ONLY[3:]:
            cli(*args, env={"PHEMS_DATABASE_URL": url}).one_line_error(
                "PHEMS_DATABASE_URL", "holds no connector store"
            )


def test_read_only_commands_read_an_existing_store(cli: Cli, tmp_path: Path) -> None:
    make_store(tmp_path / "phems-data")
    verified = cli("audit", "verify")
    assert (verified.code, verified.out.strip()) == (
        0,
        "audit log intact: 0 entries; no signed checkpoint yet",
    )
    assert cli("keys", "show").code == 0
    validated = cli("catalog", "validate")
    assert validated.code == 1 and "does NOT conform" in validated.out  # an empty catalog


def test_missing_shapes_directory(cli: Cli, tmp_path: Path) -> None:
    cli("catalog", "validate", "x.ttl", env={"PHEMS_SHACL_DIR": str(tmp_path)}).one_line_error(
        "PHEMS_SHACL_DIR", "unset it to use the shapes shipped with the connector"
    )
