"""The fulfilment seam: durable jobs, the opt-out list, data plane calls (rate limits).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_ts = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("key", sa.String(512), nullable=False),
        sa.Column("node", sa.String(255)),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("stage", sa.String(255), nullable=False),
        sa.Column("percent", sa.Float, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("run_after", _ts, nullable=False),
        sa.Column("lease_until", _ts),
        sa.Column("owner", sa.String(255)),
        sa.Column("result", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("created_at", _ts, nullable=False),
        sa.Column("updated_at", _ts, nullable=False),
        sa.Column("finished_at", _ts),
        sa.UniqueConstraint("key", name="uq_jobs_key"),
    )
    op.create_index("ix_jobs_claim", "jobs", ["state", "run_after"])
    op.create_table(
        "optouts",
        sa.Column("patient_id", sa.String(255), primary_key=True),
        sa.Column("added_at", _ts, nullable=False),
        sa.Column("added_by", sa.String(512), nullable=False),
    )
    op.create_table(
        "dataplane_calls",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("consumer", sa.String(512), nullable=False),
        sa.Column("agreement_id", sa.String(255), nullable=False),
        sa.Column("transfer_id", sa.String(255), nullable=False),
        sa.Column("output_type", sa.String(32), nullable=False),
        sa.Column("epsilon", sa.Float, nullable=False),
        sa.Column("called_at", _ts, nullable=False),
    )
    op.create_index("ix_dataplane_calls_consumer", "dataplane_calls", ["consumer", "called_at"])


def downgrade() -> None:
    op.drop_index("ix_dataplane_calls_consumer", "dataplane_calls")
    op.drop_table("dataplane_calls")
    op.drop_table("optouts")
    op.drop_index("ix_jobs_claim", "jobs")
    op.drop_table("jobs")
