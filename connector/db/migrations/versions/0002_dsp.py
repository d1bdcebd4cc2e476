"""Dataspace Protocol: datasets, negotiations, transfers, agreements, outbox.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("title", sa.String(512), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("modified_at", TS, nullable=False),
    )
    op.create_table(
        "negotiations",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("provider_pid", sa.String(255)),
        sa.Column("consumer_pid", sa.String(255)),
        sa.Column("counterparty_did", sa.String(512), nullable=False),
        sa.Column("counterparty_address", sa.String(2048)),
        sa.Column("dataset_id", sa.String(512)),
        sa.Column("approval", sa.String(16)),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("role", "counterparty_did", "consumer_pid", name="uq_negotiation_cpid"),
    )
    op.create_table(
        "transfers",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("provider_pid", sa.String(255)),
        sa.Column("consumer_pid", sa.String(255)),
        sa.Column("agreement_id", sa.String(255)),
        sa.Column("counterparty_did", sa.String(512), nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("role", "counterparty_did", "consumer_pid", name="uq_transfer_cpid"),
    )
    op.create_table(
        "agreements",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("negotiation_id", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("dataset_id", sa.String(512), nullable=False),
        sa.Column("provider_did", sa.String(512), nullable=False),
        sa.Column("consumer_did", sa.String(512), nullable=False),
        sa.Column("agreement", sa.Text, nullable=False),
        sa.Column("provider_signature", sa.Text, nullable=False),
        sa.Column("consumer_signature", sa.Text, nullable=False),
        sa.Column("uses", sa.Integer, nullable=False),
        sa.Column("epsilon_spent", sa.Float, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("process_kind", sa.String(16), nullable=False),
        sa.Column("process_id", sa.String(255), nullable=False),
        sa.Column("message_type", sa.String(64), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("audience", sa.String(512), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("sent_at", TS),
        sa.Column("failed_at", TS),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_outbox_process_id", "outbox", ["process_id"])
    op.create_index("ix_outbox_next_attempt_at", "outbox", ["next_attempt_at"])
