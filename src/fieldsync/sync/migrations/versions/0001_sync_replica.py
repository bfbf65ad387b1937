"""Sync replica: records, organizations, assignments, node leases.

Revision ID: 0001
Revises:
Create Date: 2026-11-22 02:02:53.791351
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "node_leases",
        sa.Column("node_id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("holder", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("node_id", name=op.f("pk_node_leases")),
    )
    op.create_table(
        "sync_assignments",
        sa.Column("assignment_id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("building_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("owner_version", sa.BigInteger(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("sync_version", sa.BigInteger(), nullable=False),
        sa.Column(
            "changed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("assignment_id", name=op.f("pk_sync_assignments")),
    )
    op.create_index(
        "ix_sync_assignments_tombstones",
        "sync_assignments",
        ["changed_at"],
        unique=False,
        postgresql_where=sa.text("deleted"),
    )
    op.create_index(
        "ix_sync_assignments_user", "sync_assignments", ["user_id", "building_id"], unique=False
    )
    op.create_table(
        "sync_organizations",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("purged_through", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("organization_id", name=op.f("pk_sync_organizations")),
    )
    op.create_table(
        "sync_records",
        sa.Column("collection", sa.Text(collation="C"), nullable=False),
        sa.Column("record_id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("building_id", sa.Uuid(), nullable=True),
        sa.Column("owner_version", sa.BigInteger(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("change", sa.Text(), nullable=False),
        sa.Column("sync_version", sa.BigInteger(), nullable=False),
        sa.Column(
            "changed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("collection", "record_id", name=op.f("pk_sync_records")),
    )
    op.create_index(
        "ix_sync_records_building", "sync_records", ["building_id", "sync_version"], unique=False
    )
    op.create_index(
        "ix_sync_records_feed",
        "sync_records",
        ["organization_id", "sync_version", "record_id", "collection"],
        unique=False,
    )
    op.create_index(
        "ix_sync_records_tombstones",
        "sync_records",
        ["changed_at"],
        unique=False,
        postgresql_where=sa.text("deleted"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_sync_records_tombstones", table_name="sync_records", postgresql_where=sa.text("deleted")
    )
    op.drop_index("ix_sync_records_feed", table_name="sync_records")
    op.drop_index("ix_sync_records_building", table_name="sync_records")
    op.drop_table("sync_records")
    op.drop_table("sync_organizations")
    op.drop_index("ix_sync_assignments_user", table_name="sync_assignments")
    op.drop_index(
        "ix_sync_assignments_tombstones",
        table_name="sync_assignments",
        postgresql_where=sa.text("deleted"),
    )
    op.drop_table("sync_assignments")
    op.drop_table("node_leases")
