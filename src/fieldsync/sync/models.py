"""The sync replica's tables: the latest state of every syncable record, per-organization
versions, and the building assignments that decide a technician's scope.

Core tables, not ORM classes: the service reads and writes them in bulk with asyncpg.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    PrimaryKeyConstraint,
    Table,
    Text,
    Uuid,
    func,
    text,
)

from fieldsync.kit.db.models import service_metadata
from fieldsync.kit.ids.lease import node_lease_table

metadata = service_metadata()
node_leases = node_lease_table(metadata)

organizations = Table(
    "sync_organizations",
    metadata,
    Column("organization_id", Uuid, primary_key=True),
    # The version of the last ingested batch: every change <= it is in the replica.
    Column("version", BigInteger, nullable=False, server_default="0"),
    # Tombstones up to this version were purged: older checkpoints must start over.
    Column("purged_through", BigInteger, nullable=False, server_default="0"),
)

records = Table(
    "sync_records",
    metadata,
    # "C" collation: checkpoints compare collection names byte-wise, like Python.
    Column("collection", Text(collation="C"), nullable=False),
    Column("record_id", Uuid, nullable=False),
    Column("organization_id", Uuid, nullable=False),
    Column("building_id", Uuid),
    Column("owner_version", BigInteger, nullable=False),
    Column("deleted", Boolean, nullable=False),
    # The change exactly as a pull sends it, rendered once at ingestion: pulls join
    # these instead of building JSON per row per pull. The record's JSON is inside it
    # (`stored.record_sql`), not stored a second time.
    Column("change", Text, nullable=False),
    Column("sync_version", BigInteger, nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("collection", "record_id"),
    # Pull for a whole organization: one index range scan in checkpoint order.
    Index("ix_sync_records_feed", "organization_id", "sync_version", "record_id", "collection"),
    # Pull of one collection (RxDB): one index range scan in (lwt, id) order.
    Index(
        "ix_sync_records_collection_feed",
        "organization_id",
        "collection",
        "sync_version",
        "record_id",
    ),
    # Pull for a technician: the records of their buildings.
    Index("ix_sync_records_building", "building_id", "sync_version"),
    Index("ix_sync_records_tombstones", "changed_at", postgresql_where=text("deleted")),
)

assignments = Table(
    "sync_assignments",
    metadata,
    Column("assignment_id", Uuid, primary_key=True),
    Column("organization_id", Uuid, nullable=False),
    Column("building_id", Uuid, nullable=False),
    Column("user_id", Uuid, nullable=False),
    Column("owner_version", BigInteger, nullable=False),
    Column("deleted", Boolean, nullable=False),
    Column("sync_version", BigInteger, nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_sync_assignments_user", "user_id", "building_id"),
    Index("ix_sync_assignments_tombstones", "changed_at", postgresql_where=text("deleted")),
)
