"""Negotiations: one per (role, counterparty, providerPid), as there is one per consumerPid.

Copies of a provider's initial ContractOfferMessage arriving in the same instant (a retry
racing the original, two replicas of the provider's sender) each created a consumer-side
negotiation; the provider talks to only one of them. The unique index makes the copies answer
as repeats (``receive_offer``).

A database may already hold such copies. Before the index is built, every copy but the most
recently updated (the one the provider has talked to since, if any) is terminated (the reason
names the copy kept) and loses its providerPid, and their ids are logged; nothing is deleted.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")


def upgrade() -> None:
    conn = op.get_bind()
    n = sa.table(
        "negotiations",
        sa.column("id", sa.String),
        sa.column("role", sa.String),
        sa.column("state", sa.String),
        sa.column("provider_pid", sa.String),
        sa.column("counterparty_did", sa.String),
        sa.column("document", sa.Text),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    key = (n.c.role, n.c.counterparty_did, n.c.provider_pid)
    groups = conn.execute(
        sa.select(*key)
        .where(n.c.provider_pid.is_not(None))
        .group_by(*key)
        .having(sa.func.count() > 1)
    ).all()
    for role, counterparty, provider_pid in groups:
        rows = (
            conn.execute(
                sa.select(n.c.id)
                .where(n.c.role == role, n.c.counterparty_did == counterparty)
                .where(n.c.provider_pid == provider_pid)
                .order_by(n.c.updated_at.desc(), n.c.id.desc())
            )
            .scalars()
            .all()
        )
        copies = list(rows[1:])
        log.warning(
            "negotiation %s kept; its copies %s (same providerPid %s from %s) terminated",
            rows[0],
            ", ".join(copies),
            provider_pid,
            counterparty,
        )
        reason = f"a copy of negotiation {rows[0]}: the provider's initial offer arrived twice"
        for copy in copies:
            doc = json.loads(
                conn.execute(sa.select(n.c.document).where(n.c.id == copy)).scalar_one()
            )
            doc["termination_code"] = "duplicate"
            doc["termination_reason"] = [reason]
            conn.execute(
                n.update()
                .where(n.c.id == copy)
                .values(
                    state="TERMINATED",
                    provider_pid=None,
                    document=json.dumps(doc),
                    updated_at=datetime.now(UTC),
                )
            )
    op.create_index(
        "uq_negotiation_ppid",
        "negotiations",
        ["role", "counterparty_did", "provider_pid"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_negotiation_ppid", "negotiations")
