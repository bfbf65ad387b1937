"""What the sync service checks before a mutation goes to its owner.

It knows the replica, so it can answer at once what the owner would only answer
after a round trip, and — for records the caller may not see — answer exactly as
for records that do not exist: `not_found`, with no record.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from fieldsync.contracts.changes import ChangeOp
from fieldsync.contracts.collections import BUILDINGS, COLLECTIONS, SERVER_FIELDS, Collection
from fieldsync.contracts.identity import Caller
from fieldsync.contracts.mutations import Mutation, MutationResult, RejectionCode, rejected
from fieldsync.sync.push.replica import KnownRecord, RecordKey
from fieldsync.sync.push.schemas import PushMutation


def reference_of(collection: Collection) -> tuple[str, str] | None:
    """(field, collection) of the record a new record hangs from, if any."""
    if collection.building_field is not None:
        return collection.building_field, BUILDINGS.name
    return collection.parent


def referenced_keys(mutations: list[PushMutation]) -> set[RecordKey]:
    """Every record the checks may look up: the mutated ones and their parents."""
    keys: set[RecordKey] = set()
    for mutation in mutations:
        keys.add((mutation.collection, mutation.id))
        reference = reference_of(COLLECTIONS[mutation.collection])
        if reference is not None and mutation.data is not None:
            parent_id = _as_uuid(mutation.data.get(reference[0]))
            if parent_id is not None:
                keys.add((reference[1], parent_id))
    return keys


@dataclass
class MutationChecks:
    """Checks one push's mutations in order, remembering the records it creates."""

    caller: Caller
    scope: frozenset[uuid.UUID] | None
    known: dict[RecordKey, KnownRecord]
    created: dict[RecordKey, uuid.UUID | None] = field(default_factory=dict)

    def check(self, pushed: PushMutation) -> Mutation | MutationResult:
        """The mutation to send to the owner, or the result it gets without one."""
        collection = COLLECTIONS[pushed.collection]
        record = self.known.get((collection.name, pushed.id))
        if record is not None and record.organization_id != self.caller.organization_id:
            return self._not_found(pushed)
        data: dict[str, object] | None = None
        if pushed.op is ChangeOp.UPSERT:
            if pushed.data is None:
                return rejected(
                    pushed.mutation_id,
                    RejectionCode.VALIDATION,
                    "an upsert carries data",
                    field="data",
                )
            data = {name: value for name, value in pushed.data.items() if name not in SERVER_FIELDS}
            unknown = sorted(set(data) - collection.writable)
            if unknown:
                return rejected(
                    pushed.mutation_id,
                    RejectionCode.VALIDATION,
                    f"{collection.name} has no field {unknown[0]!r}",
                    field=unknown[0],
                )
        building = self._building_of(collection, pushed, record, data)
        if isinstance(building, MutationResult):
            return building
        creates_a_building = collection.name == BUILDINGS.name and record is None
        # A new building is in nobody's scope yet: the owner answers by role (a
        # technician's create is `forbidden`), and there is no record to reveal.
        if (
            self.scope is not None
            and not creates_a_building
            and (building is None or building not in self.scope)
        ):
            return self._not_found(pushed)
        if record is None and pushed.op is ChangeOp.UPSERT and pushed.base_version is None:
            self.created[(collection.name, pushed.id)] = building
        return Mutation(
            mutation_id=pushed.mutation_id,
            collection=collection.name,
            id=pushed.id,
            op=pushed.op,
            data=data,
            base_version=pushed.base_version,
        )

    def _building_of(
        self,
        collection: Collection,
        pushed: PushMutation,
        record: KnownRecord | None,
        data: dict[str, object] | None,
    ) -> uuid.UUID | MutationResult | None:
        """The building the mutation touches (None when the replica cannot tell)."""
        if collection.name == BUILDINGS.name:
            return pushed.id
        reference = reference_of(collection)
        if reference is None:  # a collection scoped by nothing but its organization
            return record.building_id if record is not None else None
        name, parent_collection = reference
        if data is None or name not in data:
            if record is not None:
                return record.building_id
            if pushed.op is ChangeOp.UPSERT and pushed.base_version is None:
                return rejected(
                    pushed.mutation_id,
                    RejectionCode.VALIDATION,
                    f"a new record of {collection.name} needs {name!r}",
                    field=name,
                )
            return None  # the owner answers for records the replica does not know
        parent_id = _as_uuid(data[name])
        if parent_id is None:
            return rejected(
                pushed.mutation_id, RejectionCode.VALIDATION, f"{name!r} is not a UUID", field=name
            )
        parent_key = (parent_collection, parent_id)
        if parent_key in self.created:
            return self.created[parent_key]
        parent = self.known.get(parent_key)
        if (
            parent is None
            or parent.deleted
            or parent.organization_id != self.caller.organization_id
        ):
            return rejected(
                pushed.mutation_id,
                RejectionCode.NOT_FOUND,
                f"no such {parent_collection} record in your scope",
                field=name,
            )
        # Moving a record to another building: the caller must reach both.
        if (
            record is not None
            and self.scope is not None
            and record.building_id != parent.building_id
            and record.building_id not in self.scope
        ):
            return self._not_found(pushed)
        return parent.building_id

    @staticmethod
    def _not_found(pushed: PushMutation) -> MutationResult:
        return rejected(pushed.mutation_id, RejectionCode.NOT_FOUND, "no such record in your scope")


def _as_uuid(value: object) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            return None
    return None
