"""`phems-connector serve` as a user runs it: zero configuration, restarts, bad settings."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.cli.stores import make_store
from tests.conftest import free_port
from tests.processes import REPO, connector_env, running_connector


def test_serve_with_no_configuration_then_restart(tmp_path: Path) -> None:
    port = free_port()
    with running_connector(tmp_path / "data", port) as c:
        did_doc = httpx.get(c.url + "/.well-known/did.json").json()
        assert httpx.get(c.url + "/.well-known/dspace-version").json()["protocolVersions"]
        assert c.did == f"did:web:127.0.0.1%3A{port}"
    with running_connector(tmp_path / "data", port) as again:
        assert httpx.get(again.url + "/.well-known/did.json").json() == did_doc
        assert httpx.get(again.url + "/readyz").status_code == 200
    log_line = (tmp_path / "data" / f"connector-{port}.log").read_text().splitlines()[-1]
    assert "level" in json.loads(log_line)


def _run_cli(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = connector_env(tmp_path / "data", free_port())
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "connector", *args],
        env=base,
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=60,
    )


def _one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_unknown_database_scheme(tmp_path: Path) -> None:
    result = _run_cli(tmp_path, "serve", env={"PHEMS_DATABASE_URL": "mysql://x/y"})
    _one_line_error(result, "PHEMS_DATABASE_URL", "mysql")


def test_unreachable_database(tmp_path: Path) -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nope"
    result = _run_cli(tmp_path, "serve", env={"PHEMS_DATABASE_URL": url})
    _one_line_error(result, "PHEMS_DATABASE_URL", "cannot reach")


def test_unreadable_key_file(tmp_path: Path) -> None:
    result = _run_cli(
        tmp_path, "serve", env={"PHEMS_SIGNING_KEY_FILE": str(tmp_path / "missing.jwk")}
    )
    _one_line_error(result, "PHEMS_SIGNING_KEY_FILE")


def test_missing_shacl_shapes(tmp_path: Path) -> None:
    """Publishing the sample dataset validates it against the HealthDCAT-AP shapes: without
    them, one line naming the setting, not a traceback."""
    empty = tmp_path / "no-shapes"
    empty.mkdir()
    result = _run_cli(tmp_path, "serve", "--with-sample-data", env={"PHEMS_SHACL_DIR": str(empty)})
    # Migrations have logged by then (JSON lines); the error is the one plain line.
    assert result.returncode == 2 and "Traceback" not in result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    for needle in ("PHEMS_SHACL_DIR", str(empty), "healthdcat-ap-r8"):
        assert needle in error, error


def test_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _run_cli(tmp_path, "serve", "--port", str(port))
    _one_line_error(result, "PHEMS_PORT", "already in use")


def test_bad_port_value(tmp_path: Path) -> None:
    result = _run_cli(tmp_path, "serve", env={"PHEMS_PORT": "eighty"})
    _one_line_error(result, "PHEMS_PORT")


def test_keys_init_then_show(tmp_path: Path) -> None:
    made = _run_cli(tmp_path, "keys", "init")
    assert made.returncode == 0, made.stderr
    out = json.loads(made.stdout)
    assert out["did"].startswith("did:web:127.0.0.1")
    assert (tmp_path / "data" / "keys" / "signing.jwk").is_file()
    shown = _run_cli(tmp_path, "keys", "show")
    assert shown.returncode == 0, shown.stderr
    keys = [m["publicKeyJwk"] for m in json.loads(shown.stdout)["verificationMethod"]]
    assert keys == [m["publicKeyJwk"] for m in out["verificationMethod"]]
    # Neither made a management API key: the connector does at its first start.
    assert "generated at the first start" in json.loads(shown.stdout)["managementApiKey"]
    assert not (tmp_path / "data" / "management-api-key").exists()


def test_audit_export_names_its_observer(tmp_path: Path) -> None:
    make_store(tmp_path / "data")
    env = {"PHEMS_PUBLIC_URL": "https://connector.hospital.example"}
    named = _run_cli(tmp_path, "audit", "export", env=env)
    assert named.returncode == 0, named.stderr
    assert named.stderr == ""
    # Without the connector's public URL, the export says whom it names, from host and port.
    base = connector_env(tmp_path / "data", free_port())
    del base["PHEMS_PUBLIC_URL"]
    unnamed = subprocess.run(
        [sys.executable, "-m", "connector", "audit", "export"],
        env=base | {"PHEMS_PORT": "8443"},
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unnamed.returncode == 0, unnamed.stderr
    assert "PHEMS_PUBLIC_URL is not set" in unnamed.stderr
    assert "did:web:127.0.0.1%3A8443" in unnamed.stderr


def test_every_command_has_help(tmp_path: Path) -> None:
    for args in (
        [],
        ["serve"],
        ["keys"],
        ["keys", "show"],
        ["audit"],
        ["audit", "verify"],
        ["audit", "export"],
        ["authority"],
        ["authority", "init"],
        ["authority", "issue"],
    ):
        result = _run_cli(tmp_path, *args, "--help")
        assert result.returncode == 0, (args, result.stderr)
        assert "Usage" in result.stdout


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "cannot read"),
        ("", "is not JSON"),
        ("not json", "is not JSON"),
        ("[" * 100_000, "nested too deeply"),  # the stdlib parser's RecursionError, once
        ("[" * 60 + "]" * 60, "nested too deeply"),
    ],
)
def test_agreements_verify_bad_file(tmp_path: Path, content: str | None, words: str) -> None:
    path = tmp_path / "agreement.json"
    if content is not None:
        path.write_text(content)
    result = _run_cli(tmp_path, "agreements", "verify", str(path))
    _one_line_error(result, "FILE: ", str(path), words)
