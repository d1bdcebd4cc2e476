from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from connector.identity.authority_cli import app
from connector.identity.credentials import verify_credential
from connector.identity.did import public_jwk_from_did_key
from connector.identity.resolver import DidResolver
from connector.identity.signing import (
    decode_jws_unverified,
    generate_key,
    load_private_jwk,
    save_private_jwk,
)
from tests.identity.conftest import FakeClock

runner = CliRunner()
SUBJECT = "did:web:127.0.0.1%3A8081"


def _init(tmp_path: Path) -> tuple[Path, str]:
    out = tmp_path / "authority"
    result = runner.invoke(app, ["init", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.stdout.strip()


def test_init_makes_key_and_prints_did_key(tmp_path: Path) -> None:
    out, did = _init(tmp_path)
    key = load_private_jwk(out / "authority.jwk")
    assert key.kind == "Ed25519"
    assert stat.S_IMODE((out / "authority.jwk").stat().st_mode) == 0o600
    assert public_jwk_from_did_key(did) == key.public_jwk()


def test_init_never_overwrites(tmp_path: Path) -> None:
    out, _ = _init(tmp_path)
    before = (out / "authority.jwk").read_text()
    result = runner.invoke(app, ["init", "--out", str(out)])
    assert result.exit_code == 1
    assert (
        result.stderr.strip()
        == f"error: --out: {out / 'authority.jwk'} already exists; not overwriting an authority key"
    )
    assert (out / "authority.jwk").read_text() == before


async def test_issue_data_permit_verifies(tmp_path: Path, resolver: DidResolver) -> None:
    out, did = _init(tmp_path)
    target = tmp_path / "hospital" / "credentials" / "permit.jwt"  # directories created
    result = runner.invoke(
        app,
        [
            "issue",
            "--key",
            str(out),
            "--subject",
            SUBJECT,
            "--type",
            "DataPermit",
            "--dataset",
            "ds-1",
            "--dataset",
            "ds-2",
            "--purpose",
            "research",
            "--permit-id",
            "HDAB-1",
            "--days",
            "10",
            "--out",
            str(target),
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    jwt = target.read_text().strip()
    clock = FakeClock(datetime.now(UTC))
    credential = await verify_credential(jwt, resolver, [did], clock)
    assert credential.subject == SUBJECT
    assert credential.claims == {
        "datasets": ["ds-1", "ds-2"],
        "purpose": "research",
        "permitId": "HDAB-1",
    }
    assert abs(credential.expires - (clock.now() + timedelta(days=10))) < timedelta(minutes=1)


def test_issue_membership_to_stdout_with_key_file(tmp_path: Path) -> None:
    out, did = _init(tmp_path)
    result = runner.invoke(
        app,
        [
            "issue",
            "--key",
            str(out / "authority.jwk"),
            "--subject",
            SUBJECT,
            "--type",
            "Membership",
        ],
    )
    assert result.exit_code == 0, result.output
    claims = json.loads(decode_jws_unverified(result.stdout.strip())[1])
    assert claims["iss"] == did
    assert claims["vc"]["type"] == ["VerifiableCredential", "MembershipCredential"]
    assert claims["exp"] - claims["nbf"] == 365 * 86400


def _error(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_issue_errors_are_one_line(tmp_path: Path) -> None:
    out, _ = _init(tmp_path)
    base = ["issue", "--key", str(out), "--subject", SUBJECT]
    assert _error([*base, "--type", "DataPermit", "--dataset", "d"]) == (
        "error: a DataPermit credential needs --purpose, --permit-id"
    )
    assert _error([*base, "--type", "Membership", "--purpose", "x"]) == (
        "error: --dataset, --purpose and --permit-id are only for --type DataPermit"
    )
    assert _error(
        ["issue", "--key", str(out), "--subject", "hospital", "--type", "Membership"]
    ) == ("error: --subject: not a DID: 'hospital'")
    missing = tmp_path / "missing.jwk"
    assert _error(
        ["issue", "--key", str(missing), "--subject", SUBJECT, "--type", "Membership"]
    ) == (f"error: --key: cannot read {missing}: No such file or directory")
    p256 = tmp_path / "p256.jwk"
    save_private_jwk(generate_key("P-256"), p256)
    assert "the authority key is Ed25519" in _error(
        ["issue", "--key", str(p256), "--subject", SUBJECT, "--type", "Membership"]
    )
    garbage = tmp_path / "garbage.jwk"
    garbage.write_text("nope")
    assert "invalid key" in _error(
        ["issue", "--key", str(garbage), "--subject", SUBJECT, "--type", "Membership"]
    )
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    assert _error([*base, "--type", "Membership", "--out", str(blocked / "m.jwt")]).startswith(
        f"error: --out: cannot write {blocked / 'm.jwt'}: "
    )


def test_bad_type_is_a_usage_error(tmp_path: Path) -> None:
    out, _ = _init(tmp_path)
    result = runner.invoke(
        app, ["issue", "--key", str(out), "--subject", SUBJECT, "--type", "Gold"]
    )
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_help() -> None:
    for args in ([], ["--help"], ["init", "--help"], ["issue", "--help"]):
        result = runner.invoke(app, args)
        assert "Traceback" not in result.output
        assert "Usage" in result.output
    assert "--permit-id" in runner.invoke(app, ["issue", "--help"]).output
