"""Aggregate answers: the released answer of each query per dataset and data version, so the
same query on the same data gets the same noisy answer (connector/fulfilment/aggregate/store.py).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "aggregate_answers",
        sa.Column("dataset_id", sa.String(512), primary_key=True),
        sa.Column("data_version", sa.String(255), primary_key=True),
        sa.Column("query_digest", sa.String(64), primary_key=True),
        sa.Column("answer", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("aggregate_answers")
