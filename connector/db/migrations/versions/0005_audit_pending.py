"""Audit entries are written unchained in their business transaction and chained later.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_pending",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(512), nullable=False),
        sa.Column("event", sa.String(128), nullable=False),
        sa.Column("negotiation_id", sa.String(255)),
        sa.Column("agreement_id", sa.String(255)),
        sa.Column("transfer_id", sa.String(255)),
        sa.Column("purpose", sa.String(512)),
        sa.Column("details", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("audit_pending")
