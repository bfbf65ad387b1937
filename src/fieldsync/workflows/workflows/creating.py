"""Creating a workflow from the default template once per idempotency key, on the raw pool.

The path of `workflows.create` and of the building changes consumer (a building's
default workflow, key = the building id), so either finds the other's workflow. Five
round trips and no ORM: `BEGIN`; the building's create lock with the key lookup; the
workflow and its steps (the deleted-building check and the template read inside);
their changes in the outbox; `COMMIT`. A key used before answers its workflow after
the second. The same rules as `WorkflowService.create`, whose session path pushed
creates keep using: the same key constraint, building lock and deleted buildings.
`ensure_defaults` does the consumer's bursts of new buildings in one transaction, with
one insert statement and one outbox statement per organization.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from fieldsync.contracts import workflows as contract
from fieldsync.contracts.changes import change_json, change_subject, pack_changes
from fieldsync.contracts.workflows import WorkflowStatus
from fieldsync.kit.errors import Conflict, NotFound, Unavailable
from fieldsync.kit.ids import SnowflakeGenerator, new_public_id
from fieldsync.kit.outbox import append_packed_raw
from fieldsync.workflows.access import Access
from fieldsync.workflows.buildings.repository import building_lock_key
from fieldsync.workflows.models import outbox
from fieldsync.workflows.state import WorkflowsState
from fieldsync.workflows.templates.service import StepCounts, ensure_default_template
from fieldsync.workflows.workflows.repository import (
    buildings_of_keys,
    find_by_key,
    insert_defaults_from_template,
    insert_from_default_template,
    lock_and_find_by_key,
    lock_buildings,
)
from fieldsync.workflows.workflows.service import NewWorkflow

# Attempts at the insert: a wrong step count guess and a missing template cost one each.
MAX_ATTEMPTS = 3

# Per process: what the last create saw of each organization's template (a guess only).
STEP_COUNTS = StepCounts()


@dataclass(frozen=True)
class CreatedOnce:
    """The workflow of the key, whether this call created it, and whether it is deleted."""

    workflow: contract.Workflow
    created: bool
    deleted: bool


async def create(state: WorkflowsState, access: Access, new: NewWorkflow) -> CreatedOnce:
    """`workflows.create`: once per key; a key whose workflow was deleted is a Conflict."""
    access.require_manager("creating a workflow")
    if not access.sees(new.building_id):
        raise NotFound("no such building")
    outcome = await create_once(state, new)
    if outcome.deleted:
        raise Conflict(
            "the workflow created with this idempotency key has been deleted",
            idempotency_key=new.idempotency_key,
        )
    return outcome


async def ensure_default(
    state: WorkflowsState, organization_id: uuid.UUID, building_id: uuid.UUID
) -> bool:
    """Give a building its default workflow unless it has (or had) one; True if created.

    Usually the api's request created it already, so the key is looked up first on
    its own (one round trip, no transaction); only a miss takes the create path.
    """
    new = NewWorkflow(
        organization_id=organization_id,
        building_id=building_id,
        idempotency_key=contract.default_workflow_key(building_id),
    )
    try:
        outcome = await create_once(state, new, look_first=True)
    except NotFound:  # the building was deleted meanwhile
        return False
    return outcome.created


async def ensure_defaults(
    state: WorkflowsState, buildings: Sequence[tuple[uuid.UUID, uuid.UUID]]
) -> int:
    """Give each `(organization, building)` its default workflow unless it has (or had)
    one, all in one transaction; how many were created. Deleted buildings are skipped.

    For a burst of new buildings (a bulk push, an import): the create locks and the key
    lookup once for the lot and one commit, instead of all three per building. Any
    error, a key used for another building included, rolls the lot back and is raised,
    so the caller can fall back to `ensure_default` one building at a time.
    """
    wanted = list(dict.fromkeys(buildings))  # once each, in order
    keys = [(org, contract.default_workflow_key(building)) for org, building in wanted]
    fresh: dict[uuid.UUID, list[tuple[uuid.UUID, str]]] = {}
    created = 0
    async with state.database.raw_connection() as connection, connection.transaction():
        # Sorted: two such transactions over the same buildings cannot deadlock.
        await lock_buildings(connection, sorted({building_lock_key(b) for _, b in wanted}))
        # After the locks, so a delete that committed before them is seen below.
        in_use = await buildings_of_keys(connection, keys)
        for (organization_id, building_id), (_, key) in zip(wanted, keys, strict=True):
            used_for = in_use.get((organization_id, key))
            if used_for is not None and used_for != building_id:
                raise Conflict("this idempotency key was used for another building")
            if used_for is None:
                fresh.setdefault(organization_id, []).append((building_id, key))
        for organization_id, new in fresh.items():
            created += await _insert_defaults(connection, state.ids, organization_id, new)
    return created


async def _insert_defaults(
    connection: asyncpg.Connection,
    ids: SnowflakeGenerator,
    organization_id: uuid.UUID,
    buildings: list[tuple[uuid.UUID, str]],
) -> int:
    """One organization's default workflows, their steps and their changes, in two
    statements; how many were created. A retired building is skipped; a key taken
    meanwhile is a Conflict (the caller's one-by-one path then answers each)."""
    for _ in range(MAX_ATTEMPTS):
        step_count = STEP_COUNTS.guess(organization_id)
        rows = await insert_defaults_from_template(
            connection,
            organization_id=organization_id,
            buildings=[
                (building_id, ids.next_id(), new_public_id(), key) for building_id, key in buildings
            ],
            step_count=step_count,
            step_ids=[ids.next_id() for _ in range(step_count * len(buildings))],
            step_public_ids=[new_public_id() for _ in range(step_count * len(buildings))],
        )
        flags = rows[0]
        if not flags["has_template"]:
            await ensure_default_template(connection, ids, organization_id)
            continue
        if flags["step_count"] != step_count:
            STEP_COUNTS.remember(organization_id, flags["step_count"])
            continue
        steps_of: dict[uuid.UUID, list[asyncpg.Record]] = {}
        workflows: list[contract.Workflow] = []
        for row in rows:
            if row["workflow_uuid"] is None:
                continue
            if row["workflow_uuid"] not in steps_of:
                steps_of[row["workflow_uuid"]] = []
                workflows.append(_new_workflow(row))
            steps_of[row["workflow_uuid"]].append(row)
        retired = set(flags["retired"] or ())
        if len(workflows) + len(retired) != len(buildings):
            raise Conflict("an idempotency key was taken meanwhile; retry")
        changes: list[tuple[str, bytes]] = []
        for workflow in workflows:
            changes += _changes_of(organization_id, workflow, steps_of[workflow.id])
        await _append(connection, ids, changes)
        return len(workflows)
    raise Conflict("the organization's default template cannot be used now; retry")


def _new_workflow(row: asyncpg.Record) -> contract.Workflow:
    """A default workflow just inserted (a row of `insert_defaults_from_template`)."""
    return contract.Workflow(
        id=row["workflow_uuid"],
        building_id=row["workflow_building_id"],
        name=row["workflow_name"],
        status=WorkflowStatus.OPEN,
        assignee_id=None,
        due_date=None,
        updated_at=row["workflow_updated_at"],
        version=1,
    )


async def create_once(
    state: WorkflowsState, new: NewWorkflow, *, look_first: bool = False
) -> CreatedOnce:
    """The key's workflow, created now unless it exists; NotFound for a deleted building.

    `look_first`: look the key up before taking the lock, when it is likely used.
    """
    try:
        async with state.database.raw_connection() as connection:
            if look_first:
                existing = await find_by_key(connection, new.organization_id, new.idempotency_key)
                if existing is not None and existing["building_id"] == new.building_id:
                    return _existing(existing)
            async with connection.transaction():
                return await _create_once(connection, state.ids, new)
    except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError):
        raise Unavailable("the transaction lost a race; retry") from None


async def _create_once(
    connection: asyncpg.Connection, ids: SnowflakeGenerator, new: NewWorkflow
) -> CreatedOnce:
    lock_key = building_lock_key(new.building_id)
    existing = await lock_and_find_by_key(
        connection, lock_key, new.organization_id, new.idempotency_key
    )
    if existing is None:
        created = await _insert(connection, ids, new)
        if created is not None:
            return CreatedOnce(workflow=created, created=True, deleted=False)
        # A concurrent create with the same key committed first: answer its workflow.
        existing = await lock_and_find_by_key(
            connection, lock_key, new.organization_id, new.idempotency_key
        )
        if existing is None:  # pragma: no cover - the constraint says it exists
            raise Conflict("the idempotency key is in use; retry")
    if existing["building_id"] != new.building_id:
        raise Conflict(
            "this idempotency key was used for another building",
            idempotency_key=new.idempotency_key,
        )
    return _existing(existing)


def _existing(row: asyncpg.Record) -> CreatedOnce:
    return CreatedOnce(
        workflow=_workflow_of(row), created=False, deleted=row["deleted_at"] is not None
    )


async def _insert(
    connection: asyncpg.Connection, ids: SnowflakeGenerator, new: NewWorkflow
) -> contract.Workflow | None:
    """The new workflow with its changes in the outbox; None when the key was taken."""
    public_id = new_public_id()
    for _ in range(MAX_ATTEMPTS):
        step_count = STEP_COUNTS.guess(new.organization_id)
        rows = await insert_from_default_template(
            connection,
            organization_id=new.organization_id,
            building_id=new.building_id,
            workflow_id=ids.next_id(),
            public_id=public_id,
            name=new.name,
            assignee_id=new.assignee_id,
            due_date=new.due_date,
            idempotency_key=new.idempotency_key,
            step_ids=[ids.next_id() for _ in range(step_count)],
            step_public_ids=[new_public_id() for _ in range(step_count)],
        )
        flags = rows[0]
        if flags["retired"]:
            raise NotFound("the building has been deleted")
        if not flags["has_template"]:
            await ensure_default_template(connection, ids, new.organization_id)
            continue
        if flags["step_count"] != step_count:
            STEP_COUNTS.remember(new.organization_id, flags["step_count"])
            continue
        if flags["workflow_name"] is None:
            return None
        workflow = contract.Workflow(
            id=public_id,
            building_id=new.building_id,
            name=flags["workflow_name"],
            status=WorkflowStatus.OPEN,
            assignee_id=new.assignee_id,
            due_date=new.due_date,
            updated_at=flags["workflow_updated_at"],
            version=1,
        )
        await _record(connection, ids, new.organization_id, workflow, rows)
        return workflow
    raise Conflict("the organization's default template cannot be used now; retry")


async def _record(
    connection: asyncpg.Connection,
    ids: SnowflakeGenerator,
    organization_id: uuid.UUID,
    workflow: contract.Workflow,
    rows: list[asyncpg.Record],
) -> None:
    """Append the changes of the new workflow and its steps to the outbox, in order."""
    await _append(connection, ids, _changes_of(organization_id, workflow, rows))


def _changes_of(
    organization_id: uuid.UUID, workflow: contract.Workflow, rows: list[asyncpg.Record]
) -> list[tuple[str, bytes]]:
    """The outbox messages (subject, change) of a new workflow and of its steps (`step_*`
    columns of `rows`), encoded straight from the values (`change_json`)."""
    workflows_subject = change_subject(organization_id, contract.WORKFLOWS_COLLECTION)
    steps_subject = change_subject(organization_id, contract.STEPS_COLLECTION)
    changes = [
        (
            workflows_subject,
            change_json(
                contract.WORKFLOWS_COLLECTION,
                record_id=workflow.id,
                organization_id=organization_id,
                building_id=workflow.building_id,
                version=workflow.version,
                data={
                    "id": workflow.id,
                    "building_id": workflow.building_id,
                    "name": workflow.name,
                    "status": workflow.status.value,
                    "assignee_id": workflow.assignee_id,
                    "due_date": workflow.due_date,
                    "updated_at": workflow.updated_at,
                    "version": workflow.version,
                },
                occurred_at=workflow.updated_at,
            ),
        )
    ]
    for row in rows:
        if row["step_uuid"] is None:
            continue
        step = {
            "id": row["step_uuid"],
            "workflow_id": workflow.id,
            "title": row["step_title"],
            "position": row["step_position"],
            "done": False,
            "value": None,
            "completed_by": None,
            "completed_at": None,
            "required": row["step_required"],
            "version": 1,
        }
        changes.append(
            (
                steps_subject,
                change_json(
                    contract.STEPS_COLLECTION,
                    record_id=row["step_uuid"],
                    organization_id=organization_id,
                    building_id=workflow.building_id,
                    version=1,
                    data=step,
                    occurred_at=row["step_updated_at"] or workflow.updated_at,
                ),
            )
        )
    return changes


async def _append(
    connection: asyncpg.Connection,
    ids: SnowflakeGenerator,
    changes: list[tuple[str, bytes]],
) -> None:
    # One row per subject: a batch of 500 default workflows was 3,000 outbox rows.
    await append_packed_raw(connection, outbox, ids, changes, pack_changes)


def _workflow_of(row: asyncpg.Record) -> contract.Workflow:
    return contract.Workflow(
        id=row["uuid"],
        building_id=row["building_id"],
        name=row["name"],
        status=WorkflowStatus(row["status"]),
        assignee_id=row["assignee_id"],
        due_date=row["due_date"],
        updated_at=row["updated_at"],
        version=row["version"],
    )
