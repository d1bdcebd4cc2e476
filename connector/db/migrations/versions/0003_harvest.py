"""Harvesting: the merged index of other connectors' catalogs.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "harvested_datasets",
        sa.Column("provider_did", sa.String(512), primary_key=True),
        sa.Column("dataset_id", sa.String(512), primary_key=True),
        sa.Column("provider_address", sa.String(2048), nullable=False),
        sa.Column("modified", sa.String(64)),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("harvested_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("harvested_datasets")
