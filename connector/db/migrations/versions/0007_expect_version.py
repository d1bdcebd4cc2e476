"""PostgreSQL: ``phems_expect_version(actual, expected, what)``, the check of an optimistic write.

A DSP message for an existing negotiation is applied to the row as read (without a lock, a
statement of its own), and the write that follows updates the row only if no one has changed
it since: ``UPDATE negotiations ... WHERE id = $n AND phems_expect_version(xmin, $v,
'negotiation ' || $n)``. The function raises SQLSTATE 40001 (serialization_failure) when the
row's version (its ``xmin``, the transaction that wrote it) is no longer the one read, so the
whole statement fails, the outbox, agreement and audit writes combined with it included, and
the handler reads the row again and retries. Returning false instead would only skip the
update and let the rest commit. A writer holding the row makes the update wait; when it
commits, PostgreSQL checks the condition again on the new row, which then fails. SQLite keeps
locking transactions (it serialises writers) and needs nothing.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_CREATE = """
CREATE OR REPLACE FUNCTION phems_expect_version(actual xid, expected xid, what text)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF actual IS DISTINCT FROM expected THEN
        RAISE EXCEPTION '% changed since it was read', what
            USING ERRCODE = 'serialization_failure',
                  HINT = 'read it again and retry the change';
    END IF;
    RETURN true;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_CREATE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS phems_expect_version(xid, xid, text)")
