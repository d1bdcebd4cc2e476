"""The connector's own keys: generated on first start and kept, or loaded from files.

Two keys: a signing key (Ed25519 by default; a loaded P-256 key is accepted) and an X25519
key agreement key. Sources, per key: an explicit file setting, else ``<keys dir>/signing.jwk``
and ``<keys dir>/key-agreement.jwk``. A keys directory that is read-only (a Kubernetes Secret
mount) is never written to: a missing file there is a configuration error, not a new key.
Every failure is a ``ConfigurationError`` whose message starts with the setting to fix.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

from connector.errors import ConfigurationError
from connector.identity.signing import (
    InvalidKeyError,
    KeyKind,
    PrivateKey,
    generate_key,
    load_private_jwk,
    save_private_jwk,
)

SIGNING_FILE = "signing.jwk"
KEY_AGREEMENT_FILE = "key-agreement.jwk"


@dataclass(frozen=True)
class ConnectorKeys:
    signing: PrivateKey
    key_agreement: PrivateKey


def _reason(exc: OSError) -> str:
    return os.strerror(exc.errno).lower() if exc.errno else str(exc)


def _load(path: Path, setting: str, allowed: tuple[KeyKind, ...]) -> PrivateKey:
    try:
        key = load_private_jwk(path)
    except IsADirectoryError:
        raise ConfigurationError(f"{setting}: cannot read {path}: is a directory") from None
    except OSError as exc:
        raise ConfigurationError(f"{setting}: cannot read {path}: {_reason(exc)}") from None
    except InvalidKeyError as exc:
        raise ConfigurationError(f"{setting}: invalid key in {path}: {exc}") from None
    if key.kind not in allowed:
        raise ConfigurationError(
            f"{setting}: {path} holds a {key.kind} key; expected {' or '.join(allowed)}"
        )
    return key


def _writable_dir(path: Path) -> bool:
    """True if we may create files in ``path`` (creating it if missing)."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError:
        return False
    if not os.access(path, os.W_OK):
        return False
    # Root passes os.access on a read-only mount; the mount flag does not lie.
    return not os.statvfs(path).f_flag & os.ST_RDONLY


def _load_or_create(
    explicit: Path | None,
    explicit_setting: str,
    keys_dir: Path,
    filename: str,
    allowed: tuple[KeyKind, ...],
    generate: KeyKind,
    create: bool,
) -> PrivateKey:
    if explicit is not None:
        return _load(explicit, explicit_setting, allowed)
    path = keys_dir / filename
    try:
        exists = path.exists()
    except OSError as exc:
        raise ConfigurationError(f"PHEMS_KEYS_DIR: cannot read {path}: {_reason(exc)}") from None
    if exists:
        return _load(path, "PHEMS_KEYS_DIR", allowed)
    if not create:
        raise ConfigurationError(
            f"PHEMS_KEYS_DIR: no {filename} in {keys_dir}; the connector generates its keys "
            "at its first start (or with `phems-connector keys init`)"
        )
    if not _writable_dir(keys_dir):
        raise ConfigurationError(
            f"PHEMS_KEYS_DIR: {keys_dir} is read-only and has no {filename} "
            f"(mount it there or set {explicit_setting})"
        )
    key = generate_key(generate)
    try:
        save_private_jwk(key, path)
    except OSError as exc:
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise ConfigurationError(
                f"PHEMS_KEYS_DIR: cannot write {path}: {_reason(exc)} "
                f"(provide {filename} or set {explicit_setting})"
            ) from None
        raise ConfigurationError(f"PHEMS_KEYS_DIR: cannot write {path}: {_reason(exc)}") from None
    return key


def load_or_create_keys(
    keys_dir: Path,
    *,
    signing_key_file: Path | None = None,
    key_agreement_key_file: Path | None = None,
    create: bool = True,
) -> ConnectorKeys:
    """The connector's keys; missing ones are generated into ``keys_dir`` if it is writable
    (and ``create``; else a missing key is a ConfigurationError)."""
    signing = _load_or_create(
        signing_key_file,
        "PHEMS_SIGNING_KEY_FILE",
        keys_dir,
        SIGNING_FILE,
        ("Ed25519", "P-256"),
        "Ed25519",
        create,
    )
    agreement = _load_or_create(
        key_agreement_key_file,
        "PHEMS_KEY_AGREEMENT_KEY_FILE",
        keys_dir,
        KEY_AGREEMENT_FILE,
        ("X25519",),
        "X25519",
        create,
    )
    return ConnectorKeys(signing=signing, key_agreement=agreement)
