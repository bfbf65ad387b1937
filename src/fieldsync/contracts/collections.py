"""The syncable collections: one definition each, shared by owners, sync and clients.

Adding a collection is one `Collection` here plus the owner's apply handler: the sync
service ingests, scopes, serves and routes pushes for it from this definition alone.
"""

from __future__ import annotations

from dataclasses import dataclass

# Fields the server sets: ignored when a client sends them.
SERVER_FIELDS = frozenset({"id", "updated_at", "version", "created_at"})


@dataclass(frozen=True)
class Collection:
    """A syncable collection as clients see it."""

    name: str
    # The service that owns the records (and applies pushed mutations to them).
    owner: str
    # The NATS subject of the owner's `ApplyMutations` handler.
    apply_subject: str
    # Every wire field, in the order clients see them (server fields included).
    fields: tuple[str, ...]
    # The field naming the record's building (the scope key); None: the record's own id.
    building_field: str | None
    # Which parent record a new record's building comes from: (field, collection).
    parent: tuple[str, str] | None = None

    @property
    def writable(self) -> frozenset[str]:
        """Fields a client may send in a mutation's `data`."""
        return frozenset(self.fields) - SERVER_FIELDS

    def public(self, data: dict[str, object]) -> dict[str, object]:
        """The wire fields of an owner's record (owners may carry more)."""
        return {name: data.get(name) for name in self.fields}


BUILDINGS = Collection(
    name="buildings",
    owner="api",
    apply_subject="api.buildings.apply",
    fields=(
        "id",
        "name",
        "address",
        "city",
        "country",
        "latitude",
        "longitude",
        "floors",
        "notes",
        "updated_at",
        "version",
    ),
    building_field=None,
)

WORKFLOWS = Collection(
    name="workflows",
    owner="workflows",
    apply_subject="workflows.apply",
    fields=(
        "id",
        "building_id",
        "name",
        "status",
        "assignee_id",
        "due_date",
        "updated_at",
        "version",
    ),
    building_field="building_id",
)

WORKFLOW_STEPS = Collection(
    name="workflow_steps",
    owner="workflows",
    apply_subject="workflows.apply",
    fields=("id", "workflow_id", "title", "position", "done", "value", "updated_at", "version"),
    building_field=None,
    parent=("workflow_id", "workflows"),
)

COLLECTIONS: dict[str, Collection] = {
    collection.name: collection for collection in (BUILDINGS, WORKFLOWS, WORKFLOW_STEPS)
}

# Not synced to clients, but it decides a technician's scope; published by the api.
ASSIGNMENTS_COLLECTION = "building_assignments"
