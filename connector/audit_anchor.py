"""Signed checkpoints of the audit chain's head, kept outside the database.

The chain alone (``connector.audit``) is unkeyed: whoever can write the database can delete
the newest entries and move the head back, or edit an entry and recompute every hash after
it, and the chain still verifies. A checkpoint fixes the head as it was: the newest entry's
seq and hash, signed with the connector's signing key (a compact JWS, ``typ``
``phems-audit-checkpoint``), appended as one line to ``<data dir>/audit-checkpoints.jsonl``
(owner-only) every ``audit_checkpoint_seconds`` while the head moves, and once more at
shutdown. ``phems-connector audit export`` puts each checkpoint on the AuditEvent it vouches
for; ``phems-connector audit verify`` checks every checkpoint it is given (the file, and an
earlier export with ``--checkpoints``) against the log: an entry a checkpoint vouches for must
be there with that hash.

What it does not cover: entries after the newest checkpoint (at most one interval of them),
and a checkpoint file deleted together with the database rows (keep exports elsewhere: any
earlier export still anchors the entries it holds).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from connector.errors import AuthenticationError
from connector.files import open_private
from connector.identity.did import SIGNING_FRAGMENT
from connector.identity.keys import ConnectorKeys
from connector.identity.signing import sign_jws, verify_jws

FILE_NAME = "audit-checkpoints.jsonl"
TYP = "phems-audit-checkpoint"
EXTENSION = "https://w3id.org/phems/ns/audit-checkpoint"


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    at: str
    token: str


@dataclass(frozen=True)
class Unreadable:
    """A line (or export event) that is not a checkpoint signed with our key."""

    where: str
    reason: str


class AuditAnchor:
    def __init__(self, path: Path, did: str, keys: ConnectorKeys) -> None:
        self.path = path
        self.did = did
        self.keys = keys

    def write(self, seq: int, hash_: str, at: datetime) -> str:
        """Append a checkpoint of the head (``seq``, ``hash_``) and return it."""
        payload = {"iss": self.did, "seq": seq, "hash": hash_, "at": at.isoformat()}
        token = sign_jws(
            json.dumps(payload, sort_keys=True).encode(),
            self.keys.signing,
            f"{self.did}#{SIGNING_FRAGMENT}",
            extra_header={"typ": TYP},
        )
        with open_private(self.path, "a") as out:
            out.write(token + "\n")
        return token

    def read(self, source: Path | None = None) -> list[Checkpoint | Unreadable]:
        """The checkpoints in ``source`` (default: our file), which may be a checkpoint file
        or an export (AuditEvent NDJSON with checkpoint extensions); [] if it is missing."""
        path = source or self.path
        try:
            lines = path.read_text().splitlines()
        except FileNotFoundError:
            return []
        found: list[Checkpoint | Unreadable] = []
        for number, line in enumerate(lines, 1):
            line = line.strip()
            if not line:
                continue
            where = f"{path.name} line {number}"
            if line.startswith("{"):
                found += [self.check(t, where) for t in _from_event(line)]
            else:
                found.append(self.check(line, where))
        return found

    def check(self, token: str, where: str) -> Checkpoint | Unreadable:
        try:
            header, payload = verify_jws(token, self.keys.signing.public_jwk())
            body = json.loads(payload)
            if header.get("typ") != TYP or body.get("iss") != self.did:
                return Unreadable(where, "not an audit checkpoint of this connector")
            return Checkpoint(int(body["seq"]), str(body["hash"]), str(body["at"]), token)
        except AuthenticationError as exc:
            return Unreadable(where, f"signature not valid with our key ({exc.detail})")
        except (ValueError, KeyError, TypeError):
            return Unreadable(where, "malformed checkpoint")


def _from_event(line: str) -> Iterable[str]:
    try:
        event = json.loads(line)
    except ValueError:
        return []
    extensions: Any = event.get("extension", []) if isinstance(event, dict) else []
    return [
        str(x.get("valueString"))
        for x in extensions if isinstance(extensions, list)
        if isinstance(x, dict) and x.get("url") == EXTENSION
    ]  # fmt: skip


def check_chain(
    checkpoints: Iterable[Checkpoint | Unreadable], hashes: dict[int, str], last_seq: int
) -> list[str]:
    """Problems, in words, between the checkpoints and the log's ``hashes`` (seq -> hash)."""
    problems = []
    for item in checkpoints:
        if isinstance(item, Unreadable):
            problems.append(f"checkpoint ({item.where}): {item.reason}")
        elif item.seq > last_seq:
            problems.append(
                f"newest entries were deleted: the checkpoint of {item.at} vouches for "
                f"entry {item.seq}, the log ends at {last_seq}"
            )
        elif hashes.get(item.seq) != item.hash:
            problems.append(
                f"entry {item.seq} differs from the checkpoint of {item.at}: the log was "
                "rewritten at or before it"
            )
    return problems
