from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.errors import ConfigurationError
from connector.identity.keys import load_or_create_keys
from connector.identity.signing import generate_key, save_private_jwk
from tests.identity.conftest import is_root

REPO = Path(__file__).resolve().parents[2]


def test_first_start_generates_and_keeps_keys(tmp_path: Path) -> None:
    keys_dir = tmp_path / "data" / "keys"
    first = load_or_create_keys(keys_dir)
    assert first.signing.kind == "Ed25519"
    assert first.key_agreement.kind == "X25519"
    for name in ("signing.jwk", "key-agreement.jwk"):
        assert stat.S_IMODE((keys_dir / name).stat().st_mode) == 0o600
    again = load_or_create_keys(keys_dir)
    assert again.signing.thumbprint() == first.signing.thumbprint()
    assert again.key_agreement.thumbprint() == first.key_agreement.thumbprint()


def test_missing_key_agreement_key_is_added_next_to_existing_signing_key(tmp_path: Path) -> None:
    signing = generate_key("P-256")
    save_private_jwk(signing, tmp_path / "signing.jwk")
    keys = load_or_create_keys(tmp_path)
    assert keys.signing.thumbprint() == signing.thumbprint()
    assert (tmp_path / "key-agreement.jwk").exists()


def test_explicit_files_override_keys_dir(tmp_path: Path) -> None:
    signing, agreement = generate_key("P-256"), generate_key("X25519")
    save_private_jwk(signing, tmp_path / "s.jwk")
    save_private_jwk(agreement, tmp_path / "a.jwk")
    keys_dir = tmp_path / "unused"
    keys = load_or_create_keys(
        keys_dir, signing_key_file=tmp_path / "s.jwk", key_agreement_key_file=tmp_path / "a.jwk"
    )
    assert keys.signing.thumbprint() == signing.thumbprint()
    assert keys.key_agreement.thumbprint() == agreement.thumbprint()
    assert not keys_dir.exists()


def test_missing_explicit_file_names_the_setting(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jwk"
    with pytest.raises(ConfigurationError) as info:
        load_or_create_keys(tmp_path, signing_key_file=missing)
    assert (
        info.value.detail
        == f"PHEMS_SIGNING_KEY_FILE: cannot read {missing}: no such file or directory"
    )


def test_directory_as_key_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_or_create_keys(tmp_path, key_agreement_key_file=tmp_path)
    assert (
        info.value.detail == f"PHEMS_KEY_AGREEMENT_KEY_FILE: cannot read {tmp_path}: is a directory"
    )


def test_invalid_key_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jwk"
    bad.write_text('{"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}')
    with pytest.raises(
        ConfigurationError, match=r"^PHEMS_SIGNING_KEY_FILE: invalid key in .*no private"
    ):
        load_or_create_keys(tmp_path, signing_key_file=bad)
    bad.write_text("{")
    with pytest.raises(
        ConfigurationError, match=r"^PHEMS_SIGNING_KEY_FILE: invalid key .*not JSON"
    ):
        load_or_create_keys(tmp_path, signing_key_file=bad)


def test_wrong_key_kind_for_its_role(tmp_path: Path) -> None:
    save_private_jwk(generate_key("X25519"), tmp_path / "signing.jwk")
    with pytest.raises(
        ConfigurationError,
        match=r"^PHEMS_KEYS_DIR: .* holds a X25519 key; expected Ed25519 or P-256",
    ):
        load_or_create_keys(tmp_path)


def test_corrupt_generated_key_names_keys_dir(tmp_path: Path) -> None:
    (tmp_path / "signing.jwk").write_text(json.dumps({"kty": "oct", "k": "AAAA"}))
    with pytest.raises(
        ConfigurationError, match=r"^PHEMS_KEYS_DIR: invalid key in .*unsupported key type"
    ):
        load_or_create_keys(tmp_path)


# Permission checks need an unprivileged process: root reads and writes anything.

_PROBE = """
import sys
from pathlib import Path
from connector.errors import ConfigurationError
from connector.identity.keys import load_or_create_keys
args = sys.argv[1:]
try:
    keys = load_or_create_keys(
        Path(args[0]), signing_key_file=Path(args[1]) if len(args) > 1 else None
    )
except ConfigurationError as exc:
    print("ERROR", exc.detail)
else:
    print("OK", keys.signing.thumbprint())
"""


def _run_unprivileged(*args: str) -> str:
    command = [sys.executable, "-c", _PROBE, *args]
    if is_root():
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: cannot test file permissions")
        command = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd="/", timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A temporary directory an unprivileged user can traverse (pytest's tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="phems-keys-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for sub in path.rglob("*"):
            if sub.is_dir():
                sub.chmod(0o755)
        shutil.rmtree(path)


def test_unreadable_key_file_names_the_setting(shared_tmp: Path) -> None:
    key_file = shared_tmp / "signing.jwk"
    save_private_jwk(generate_key("Ed25519"), key_file)
    key_file.chmod(0o600)
    if not is_root():
        key_file.chmod(0o000)
    out = _run_unprivileged(str(shared_tmp / "keys"), str(key_file))
    assert out == f"ERROR PHEMS_SIGNING_KEY_FILE: cannot read {key_file}: permission denied"


def test_read_only_dir_without_keys_is_never_written(shared_tmp: Path) -> None:
    mount = shared_tmp / "secret"
    mount.mkdir()
    mount.chmod(0o555)
    out = _run_unprivileged(str(mount))
    assert out.startswith(f"ERROR PHEMS_KEYS_DIR: {mount} is read-only and has no signing.jwk")
    assert "PHEMS_SIGNING_KEY_FILE" in out
    assert list(mount.iterdir()) == []


def test_read_only_dir_with_keys_loads_them(shared_tmp: Path) -> None:
    mount = shared_tmp / "secret"
    mount.mkdir()
    signing = generate_key("Ed25519")
    save_private_jwk(signing, mount / "signing.jwk")
    save_private_jwk(generate_key("X25519"), mount / "key-agreement.jwk")
    for file in mount.iterdir():
        file.chmod(0o644)  # a Secret mount's default mode
    mount.chmod(0o555)
    before = sorted(p.name for p in mount.iterdir())
    assert _run_unprivileged(str(mount)) == f"OK {signing.thumbprint()}"
    assert sorted(p.name for p in mount.iterdir()) == before
