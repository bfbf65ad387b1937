"""Sync replica: an index for one collection's feed (RxDB pulls per collection).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 05:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_sync_records_collection_feed",
        "sync_records",
        ["organization_id", "collection", "sync_version", "record_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_sync_records_collection_feed", table_name="sync_records")
