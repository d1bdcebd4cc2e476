"""Dataspace Protocol: datasets, negotiations, transfers, agreements, outbox.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

from connector.db import tables

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Created from the table definitions as they were when this revision was written; a later
# change to these tables gets its own revision with explicit operations.
_TABLES = ("datasets", "negotiations", "transfers", "agreements", "outbox")


def upgrade() -> None:
    bind = op.get_bind()
    for name in _TABLES:
        tables.metadata.tables[name].create(bind)
