"""Push: a WatermelonDB changes object, applied through the native push, all or nothing.

WatermelonDB wants a push refused whole when any pushed record changed on the server
after the client's last pull (409: it pulls, merges and pushes again). The records
are looked up in the replica first; every check that can be made before writing
(tables, fields, scope, server-side changes since `last_pulled_at`) is made for the
whole push before any mutation is sent. The mutations then go through the native
push, all or nothing per owner (owners apply them with compare-and-set against the
versions read here, and the reply waits until pulls see them). An owner can still
refuse a value, or a concurrent write can win a compare-and-set: that owner then
applies none of its records, nothing is sent to the owners after it, and the push is
answered with that record's error (409 for a lost compare-and-set). What owners before
it committed stays (buildings are sent before workflows, workflows before steps, and
a push of more than 500 records goes in batches): owners share no transaction. The
client's next sync pulls whatever was applied.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from fieldsync.contracts.changes import ChangeOp
from fieldsync.contracts.collections import COLLECTIONS, Collection
from fieldsync.contracts.identity import Caller, Role
from fieldsync.contracts.mutations import (
    MAX_MUTATIONS,
    MutationResult,
    MutationStatus,
    RejectionCode,
    rejected,
)
from fieldsync.kit.errors import Conflict, FieldsyncError, Forbidden, NotFound, ValidationFailed
from fieldsync.kit.runtime import Runtime
from fieldsync.sync.push.checks import MutationChecks, referenced_keys
from fieldsync.sync.push.replica import RecordKey
from fieldsync.sync.push.schemas import PushIn, PushMutation
from fieldsync.sync.push.service import push as push_mutations
from fieldsync.sync.scope import building_scope
from fieldsync.sync.watermelon.cursor import version_of
from fieldsync.sync.watermelon.repository import ReplicaRecord, feed_state, lookup
from fieldsync.sync.watermelon.schemas import PushedChanges, PushedRecord, TableChanges

SERVICE_NAME = "sync"
# Records in one push (created + updated + deleted, all tables); the body cap applies too.
MAX_RECORDS = 5000
# What a technician may change per collection (the owners' rules; creates and deletes
# are for managers and admins).
TECHNICIAN_FIELDS = {
    "workflows": frozenset({"status"}),
    "workflow_steps": frozenset({"done", "value"}),
}
# What the error of a refused push lists, at most.
MAX_REPORTED = 20


async def push(
    runtime: Runtime, caller: Caller, last_pulled_at: int, changes: PushedChanges
) -> None:
    """Apply the changes, or refuse them whole (409 when the server changed any since)."""
    tables = changes.by_table()
    total = sum(table.count() for table in tables.values())
    if total > MAX_RECORDS:
        raise ValidationFailed(
            f"a push carries at most {MAX_RECORDS} records; this one has {total}",
            errors=[{"loc": ["body"], "msg": f"at most {MAX_RECORDS} records"}],
        )
    database = runtime.databases[SERVICE_NAME]
    seen = version_of(last_pulled_at)
    state = await feed_state(database, caller.organization_id)
    if not state.purged_through <= seen <= state.version:
        raise Conflict(
            "last_pulled_at is not a current timestamp of this server; pull, then push again"
        )
    pushed = _pushed_records(tables)
    # Stand-in mutations, so the native checks say which parent records to look up.
    probes = [
        PushMutation(mutation_id=1, collection=key[0], id=key[1], op=ChangeOp.UPSERT, data=data)
        for key, data in pushed.items()
    ]
    replica = await lookup(database, [*pushed, *referenced_keys(probes)])
    _refuse_if_changed_since(replica, list(pushed), caller, seen)

    scope = await building_scope(database, caller)
    mutations = list(_plan(tables, replica, caller, scope))
    if not mutations:
        return
    checks = MutationChecks(
        caller=caller, scope=scope, known={key: record.known for key, record in replica.items()}
    )
    refused = [
        (mutation, result)
        for mutation in mutations
        if (result := _refusal(checks, caller, mutation, replica)) is not None
    ]
    if refused:
        raise _error_of(refused)

    client_id = f"watermelon.{uuid.uuid4().hex}"
    for start in range(0, len(mutations), MAX_MUTATIONS):
        batch = mutations[start : start + MAX_MUTATIONS]
        out = await push_mutations(
            runtime, caller, PushIn(client_id=client_id, mutations=batch), all_or_nothing=True
        )
        failed = [
            (mutation, MutationResult.model_validate(result.model_dump()))
            for mutation, result in zip(batch, out.results, strict=True)
            if result.status is not MutationStatus.APPLIED
            # Undone only because another record was refused: not the reason to report.
            and (result.error is None or result.error.code is not RejectionCode.NOT_APPLIED)
        ]
        if failed:
            raise _error_of(failed)


def _pushed_records(tables: dict[str, TableChanges]) -> dict[RecordKey, dict[str, Any] | None]:
    """Every pushed record's columns (None: deleted); a record named twice is refused."""
    pushed: dict[RecordKey, dict[str, Any] | None] = {}
    entries = [
        ((name, record.id), record.columns())
        for name, table in tables.items()
        for record in (*table.created, *table.updated)
    ] + [((name, record_id), None) for name, table in tables.items() for record_id in table.deleted]
    for key, columns in entries:
        if key in pushed:
            raise ValidationFailed(
                f"{key[0]} {key[1]} appears more than once in the push",
                errors=[{"loc": ["body", key[0]], "msg": f"{key[1]} appears more than once"}],
            )
        pushed[key] = columns
    return pushed


def _refuse_if_changed_since(
    replica: dict[RecordKey, ReplicaRecord], keys: list[RecordKey], caller: Caller, seen: int
) -> None:
    changed = [
        {"table": key[0], "id": str(key[1])}
        for key in dict.fromkeys(keys)
        if (record := replica.get(key)) is not None
        and record.known.organization_id == caller.organization_id
        and record.sync_version > seen
    ]
    if changed:
        raise Conflict(
            "records changed on the server after last_pulled_at; pull, then push again "
            "(nothing was applied)",
            changed=changed[:MAX_REPORTED],
        )


def _plan(
    tables: dict[str, TableChanges],
    replica: dict[RecordKey, ReplicaRecord],
    caller: Caller,
    scope: frozenset[uuid.UUID] | None,
) -> Iterator[PushMutation]:
    """Native mutations: parents' writes before children's, children's deletes first."""
    next_id = iter(range(1, 2**62))
    for name in COLLECTIONS:
        if name in tables:
            for record in (*tables[name].created, *tables[name].updated):
                mutation = _upsert(COLLECTIONS[name], record, replica.get((name, record.id)))
                if mutation is not None:
                    yield mutation.model_copy(update={"mutation_id": next(next_id)})
    for name in reversed(COLLECTIONS):
        for record_id in tables[name].deleted if name in tables else ():
            known = replica.get((name, record_id))
            # A record the server does not have is gone already; so, for the caller, is
            # one they may not see (another organization's, or outside their buildings).
            if (
                known is None
                or known.known.deleted
                or known.known.organization_id != caller.organization_id
                or (scope is not None and known.known.building_id not in scope)
            ):
                continue
            yield PushMutation(
                mutation_id=next(next_id),
                collection=name,
                id=record_id,
                op=ChangeOp.DELETE,
                base_version=known.known.owner_version,
            )


def _upsert(
    collection: Collection, record: PushedRecord, known: ReplicaRecord | None
) -> PushMutation | None:
    """Created or updated, alike: create what the server lacks, update what it has."""
    # `_status`, `_changed` and the app's local-only columns are not the server's.
    columns = {k: v for k, v in record.columns().items() if k in collection.writable}
    if known is None:
        return PushMutation(
            mutation_id=1,
            collection=collection.name,
            id=record.id,
            op=ChangeOp.UPSERT,
            data=columns,
        )
    if known.known.deleted:
        return None  # deleted on the server before the client's last pull: stays deleted
    current: dict[str, Any] = known.known.data or {}
    changed = {k: v for k, v in columns.items() if k not in current or current[k] != v}
    if not changed:
        return None
    return PushMutation(
        mutation_id=1,
        collection=collection.name,
        id=record.id,
        op=ChangeOp.UPSERT,
        data=changed,
        base_version=known.known.owner_version,
    )


def _refusal(
    checks: MutationChecks,
    caller: Caller,
    mutation: PushMutation,
    replica: dict[RecordKey, ReplicaRecord],
) -> MutationResult | None:
    """Why the mutation cannot be applied, as far as the sync service can tell."""
    checked = checks.check(mutation)
    if isinstance(checked, MutationResult):
        return checked
    return _role_refusal(caller, mutation, replica)


def _role_refusal(
    caller: Caller, mutation: PushMutation, replica: dict[RecordKey, ReplicaRecord]
) -> MutationResult | None:
    """The owners' role rules, checked up front so a refused push applies nothing.

    The owners stay the authority (they check again); this mirrors them: technicians
    change a workflow's `status` and a step's `done` and `value`, nothing else.
    """
    if caller.role != Role.TECHNICIAN:
        return None
    allowed = TECHNICIAN_FIELDS.get(mutation.collection, frozenset())
    existing = replica.get((mutation.collection, mutation.id))
    if (
        mutation.op is ChangeOp.UPSERT
        and existing is not None
        and mutation.data is not None
        and mutation.data.keys() <= allowed
    ):
        return None
    may = ", ".join(sorted(allowed)) or "nothing"
    return rejected(
        mutation.mutation_id,
        RejectionCode.FORBIDDEN,
        f"technicians may change only this in {mutation.collection}: {may}",
    )


def _error_of(failed: list[tuple[PushMutation, MutationResult]]) -> FieldsyncError:
    """The error refusing a push, naming its first records that failed."""
    records = [
        {
            "table": mutation.collection,
            "id": str(mutation.id),
            "status": result.status.value,
            **(result.error.model_dump(exclude_none=True) if result.error is not None else {}),
        }
        for mutation, result in failed[:MAX_REPORTED]
    ]
    first = failed[0][1]
    if first.status is MutationStatus.CONFLICT:
        return Conflict(
            "a record changed on the server while this push was applied; pull, then push again",
            records=records,
        )
    assert first.error is not None  # a rejection carries its reason
    detail = f"{failed[0][0].collection} {failed[0][0].id}: {first.error.detail}"
    if first.error.code is RejectionCode.FORBIDDEN:
        return Forbidden(detail, records=records)
    if first.error.code is RejectionCode.NOT_FOUND:
        return NotFound(detail, records=records)
    return ValidationFailed(detail, records=records)
