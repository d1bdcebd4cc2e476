"""Data subjects' opt-out of secondary use (EHDS), as the hospital records it.

Two sources, both applied inside the fulfilment seam (the view cache) so that no fulfilment
ever sees an opted-out patient:

- this list, kept through the management API (``/management/optouts``) and the CLI
  (``phems-connector optout add|remove|list``), by FHIR Patient id;
- FHIR ``Consent`` resources in the hospital's data that deny research use (see
  ``connector.fulfilment.views.SCOPE_VIEWS`` and docs/fulfilment.md for the exact codes).

Any change gives the list a new digest, which is part of every view cache key: the next data
plane call builds fresh flattened tables, and every artefact derived from the old ones
(cached noisy answers, fitted synthesizers) is keyed by the old version and never served again.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from connector.audit import AuditLog
from connector.clock import as_utc
from connector.db.engine import single_statement
from connector.db.tables import optouts
from connector.errors import BadRequestError
from connector.ports import Clock

_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


@dataclass(frozen=True)
class OptOut:
    patient_id: str
    added_at: datetime
    added_by: str

    def as_json(self) -> dict[str, str]:
        return {
            "patientId": self.patient_id,
            "addedAt": self.added_at.isoformat(),
            "addedBy": self.added_by,
        }


def check_ids(ids: list[str]) -> list[str]:
    """Patient ids as FHIR ids (``Patient/`` prefix accepted), deduplicated."""
    out: list[str] = []
    for raw in ids:
        pid = raw.strip().removeprefix("Patient/") if isinstance(raw, str) else ""
        if not _ID.match(pid):
            raise BadRequestError(f"{raw!r} is not a FHIR Patient id")
        if pid not in out:
            out.append(pid)
    if not out:
        raise BadRequestError("name at least one patient id")
    return out


class OptOutService:
    def __init__(self, engine: AsyncEngine, audit: AuditLog, clock: Clock) -> None:
        self.engine = engine
        self.audit = audit
        self.clock = clock

    async def add(self, ids: list[str], *, actor: str) -> list[str]:
        """Record opt-outs; returns the ids that were new (others were listed already)."""
        wanted = check_ids(ids)
        now = self.clock.now()
        async with self.engine.begin() as conn:
            present = await self._present(conn, wanted)
            new = [p for p in wanted if p not in present]
            if new:
                await conn.execute(
                    optouts.insert(),
                    [{"patient_id": p, "added_at": now, "added_by": actor} for p in new],
                )
                await self.audit.append(
                    actor=actor, event="optout.added", details={"patients": new}, conn=conn
                )
        return new

    async def remove(self, ids: list[str], *, actor: str) -> list[str]:
        """Withdraw opt-outs (the patient consents again); returns the ids that were listed."""
        wanted = check_ids(ids)
        async with self.engine.begin() as conn:
            present = await self._present(conn, wanted)
            gone = [p for p in wanted if p in present]
            if gone:
                await conn.execute(optouts.delete().where(optouts.c.patient_id.in_(gone)))
                await self.audit.append(
                    actor=actor, event="optout.removed", details={"patients": gone}, conn=conn
                )
        return gone

    async def listed(self) -> list[OptOut]:
        async with single_statement(self.engine) as conn:
            rows = (await conn.execute(sa.select(optouts).order_by(optouts.c.patient_id))).all()
        return [OptOut(r.patient_id, as_utc(r.added_at), r.added_by) for r in rows]

    async def ids(self) -> list[str]:
        async with single_statement(self.engine) as conn:
            query = sa.select(optouts.c.patient_id).order_by(optouts.c.patient_id)
            return [r[0] for r in (await conn.execute(query)).all()]

    @staticmethod
    def digest(ids: list[str]) -> str:
        return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()[:16]

    @staticmethod
    async def _present(conn: AsyncConnection, ids: list[str]) -> set[str]:
        query = sa.select(optouts.c.patient_id).where(optouts.c.patient_id.in_(ids))
        return {r[0] for r in (await conn.execute(query)).all()}
