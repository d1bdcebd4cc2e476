"""All tables of the store. Changes here need an Alembic revision in ``migrations/versions``."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

used_jtis = sa.Table(
    "used_jtis",
    metadata,
    sa.Column("jti", sa.String(255), primary_key=True),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False, index=True),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column(
        "seq",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=False,
    ),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(512), nullable=False),
    sa.Column("event", sa.String(128), nullable=False),
    sa.Column("negotiation_id", sa.String(255)),
    sa.Column("agreement_id", sa.String(255)),
    sa.Column("transfer_id", sa.String(255)),
    sa.Column("purpose", sa.String(512)),
    sa.Column("details", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

# One row (id=1): the newest entry's seq and hash. Locked while appending, so appends are
# serialised across replicas, and lets `audit verify` notice a deleted tail.
audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)
