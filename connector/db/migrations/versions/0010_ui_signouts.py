"""``ui_signouts``: catalog UI sessions signed out before they expired.

A UI session is a signed cookie (``connector.api.ui_session``); signing out records its nonce
here until the session would have expired, so a copy of the cookie no longer works, on any
replica.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ui_signouts",
        sa.Column("nonce", sa.String(64), primary_key=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ui_signouts")
