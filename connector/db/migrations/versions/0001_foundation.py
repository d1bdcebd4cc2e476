"""Foundation: replay guard and hash-chained audit log.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "used_jtis",
        sa.Column("jti", sa.String(255), primary_key=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_used_jtis_expires_at", "used_jtis", ["expires_at"])
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=False),
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
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    # The head row always exists, so appends can lock it (the genesis hash is all zeros).
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": "0" * 64}])
