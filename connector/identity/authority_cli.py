"""``phems-connector authority``: a data space authority for pilots and the demo.

``init`` makes an Ed25519 authority key and prints its did:key (put that DID in the
connectors' ``PHEMS_TRUSTED_ISSUERS``); ``issue`` signs Membership and DataPermit credentials
(VC-JWT) for a connector's DID. Errors are one line on stderr and exit code 1.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from connector.identity.credentials import DATA_PERMIT, MEMBERSHIP, issue_credential
from connector.identity.did import did_key_from_public_jwk
from connector.identity.signing import (
    InvalidKeyError,
    PrivateKey,
    generate_key,
    load_private_jwk,
    save_private_jwk,
)

AUTHORITY_KEY_FILE = "authority.jwk"

app = typer.Typer(
    help="Data space authority: make its key and issue credentials (pilots, demo).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


class Kind(StrEnum):
    Membership = "Membership"
    DataPermit = "DataPermit"


class _UtcClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _load_authority_key(path: Path) -> PrivateKey:
    file = path / AUTHORITY_KEY_FILE if path.is_dir() else path
    try:
        key = load_private_jwk(file)
    except OSError as exc:
        _fail(f"--key: cannot read {file}: {exc.strerror or exc}")
    except InvalidKeyError as exc:
        _fail(f"--key: invalid key in {file}: {exc}")
    if key.kind != "Ed25519":
        _fail(f"--key: {file} holds a {key.kind} key; the authority key is Ed25519 (did:key)")
    return key


@app.command()
def init(
    out: Annotated[Path, typer.Option("--out", help="Directory for authority.jwk (created).")],
) -> None:
    """Make a data space authority key (Ed25519) and print its did:key."""
    file = out / AUTHORITY_KEY_FILE
    if file.exists():
        _fail(f"--out: {file} already exists; not overwriting an authority key")
    key = generate_key("Ed25519")
    try:
        out.mkdir(parents=True, exist_ok=True, mode=0o700)
        save_private_jwk(key, file)
    except OSError as exc:
        _fail(f"--out: cannot write {file}: {exc.strerror or exc}")
    typer.echo(did_key_from_public_jwk(key.public_jwk()))


@app.command()
def issue(
    key: Annotated[Path, typer.Option("--key", help="authority.jwk, or the directory of init.")],
    subject: Annotated[str, typer.Option("--subject", help="Holder DID (a connector's DID).")],
    type: Annotated[Kind, typer.Option("--type", help="Credential type.")],
    dataset: Annotated[
        list[str] | None, typer.Option("--dataset", help="Dataset id (DataPermit; repeatable).")
    ] = None,
    purpose: Annotated[str | None, typer.Option("--purpose", help="Purpose (DataPermit).")] = None,
    permit_id: Annotated[
        str | None, typer.Option("--permit-id", help="HDAB permit reference (DataPermit).")
    ] = None,
    days: Annotated[int, typer.Option("--days", min=1, help="Validity in days.")] = 365,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Write the VC-JWT here instead of stdout (e.g. <data dir>/credentials/"
            "membership.jwt; missing directories are created).",
        ),
    ] = None,
) -> None:
    """Issue a Membership or DataPermit credential (VC-JWT) to SUBJECT."""
    if not subject.startswith("did:"):
        _fail(f"--subject: not a DID: {subject!r}")
    claims: dict[str, Any] = {}
    if type is Kind.DataPermit:
        missing = [
            name
            for name, value in (
                ("--dataset", dataset),
                ("--purpose", purpose),
                ("--permit-id", permit_id),
            )
            if not value
        ]
        if missing:
            _fail(f"a DataPermit credential needs {', '.join(missing)}")
        claims = {"datasets": list(dataset or []), "purpose": purpose, "permitId": permit_id}
    elif dataset or purpose or permit_id:
        _fail("--dataset, --purpose and --permit-id are only for --type DataPermit")
    authority_key = _load_authority_key(key)
    issuer = did_key_from_public_jwk(authority_key.public_jwk())
    clock = _UtcClock()
    now = clock.now()
    try:
        token = issue_credential(
            issuer,
            authority_key,
            subject,
            DATA_PERMIT if type is Kind.DataPermit else MEMBERSHIP,
            claims,
            now,
            now + timedelta(days=days),
            clock,
        )
    except ValueError as exc:
        _fail(str(exc))
    if out is None:
        typer.echo(token)
        return
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(token + "\n", encoding="utf-8")
    except OSError as exc:
        _fail(f"--out: cannot write {out}: {exc.strerror or exc}")
    typer.echo(f"wrote {type.value} credential for {subject} to {out}", err=True)
