"""SQL for workflows."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any

import asyncpg
from sqlalchemy import Select, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError

from fieldsync.kit.db.repository import Repository, conflict_of
from fieldsync.kit.errors import Conflict
from fieldsync.kit.pagination import Page, PageRequest
from fieldsync.workflows.access import Access
from fieldsync.workflows.locking import Lock, locked
from fieldsync.workflows.workflows.models import IDEMPOTENCY_CONSTRAINT, Workflow


class WorkflowRepository(Repository[Workflow]):
    """Workflows, always looked up within the caller's organization and building scope."""

    model = Workflow

    def select_in_scope(self, access: Access, *, include_deleted: bool = False) -> Select[Workflow]:
        """Workflows the caller may see (live ones unless `include_deleted`)."""
        statement = select(Workflow) if include_deleted else self.select_live()
        statement = statement.where(Workflow.organization_id == access.organization_id)
        if access.building_scope is not None:
            statement = statement.where(Workflow.building_id.in_(access.building_scope))
        return statement

    async def find(
        self,
        access: Access,
        public_id: uuid.UUID,
        *,
        lock: Lock = Lock.NONE,
        include_deleted: bool = False,
    ) -> Workflow | None:
        """A workflow in scope by public id (live unless `include_deleted`), or None."""
        statement = self.select_in_scope(access, include_deleted=include_deleted).where(
            Workflow.uuid == public_id
        )
        found: Workflow | None = await self.session.scalar(locked(statement, lock))
        return found

    async def find_by_id(
        self,
        access: Access,
        workflow_id: int,
        *,
        lock: Lock = Lock.NONE,
        include_deleted: bool = False,
    ) -> Workflow | None:
        """A workflow in scope by snowflake id (live unless `include_deleted`), or None."""
        statement = self.select_in_scope(access, include_deleted=include_deleted).where(
            Workflow.id == workflow_id
        )
        found: Workflow | None = await self.session.scalar(locked(statement, lock))
        return found

    async def find_by_idempotency_key(
        self, organization_id: uuid.UUID, key: str
    ) -> Workflow | None:
        """The workflow created with `key` in the organization, deleted or not."""
        found: Workflow | None = await self.session.scalar(
            select(Workflow).where(
                Workflow.organization_id == organization_id, Workflow.idempotency_key == key
            )
        )
        return found

    async def insert_once(self, values: dict[str, Any]) -> Workflow | None:
        """Insert a workflow unless its idempotency key is taken; None when it is.

        `ON CONFLICT DO NOTHING` instead of a failing INSERT: a lost race (a concurrent
        create with the same key, which this waits for) leaves the transaction usable,
        without a savepoint. Any other violation (a taken public id) still raises.
        """
        statement = (
            insert(Workflow)
            .values(id=self.ids.next_id(), **values)
            .on_conflict_do_nothing(constraint=IDEMPOTENCY_CONSTRAINT)
            .returning(Workflow)
        )
        try:
            found: Workflow | None = await self.session.scalar(statement)
        except IntegrityError as exc:
            raise conflict_of(exc) from None
        return found

    async def page_in_scope(
        self, access: Access, request: PageRequest, *, building_id: uuid.UUID | None
    ) -> Page[Workflow]:
        """Workflows in scope (of one building when given), oldest first."""
        statement = self.select_in_scope(access)
        if building_id is not None:
            statement = statement.where(Workflow.building_id == building_id)
        return await self.page(statement, request)

    async def lock_live_of_building(
        self, organization_id: uuid.UUID, building_id: uuid.UUID
    ) -> Sequence[Workflow]:
        """A building's live workflows, locked for update."""
        statement = (
            self.select_live()
            .where(Workflow.organization_id == organization_id, Workflow.building_id == building_id)
            .order_by(Workflow.id)
        )
        return (await self.session.scalars(locked(statement, Lock.UPDATE))).all()


# --- the create path on a raw asyncpg connection (see `creating.py`) -------------------

_FIND_BY_KEY = """
SELECT uuid, building_id, name, status, assignee_id, due_date, updated_at, version, deleted_at
FROM workflows WHERE organization_id = $1 AND idempotency_key = $2
"""

# Takes the building's create lock (shared with other creates, exclusive to its delete)
# and looks the key up, in one round trip. The lock does not need to precede the
# lookup: only the next statement's snapshot must be taken after it.
_LOCK_AND_FIND_BY_KEY = """
SELECT w.uuid, w.building_id, w.name, w.status, w.assignee_id, w.due_date, w.updated_at,
       w.version, w.deleted_at
FROM (SELECT pg_advisory_xact_lock_shared($1)) AS held
LEFT JOIN workflows w ON w.organization_id = $2 AND w.idempotency_key = $3
"""

# The organization's ($1) default template and its live steps numbered by position: the
# start of both insert statements below.
_DEFAULT_TEMPLATE = """
WITH template AS (
    SELECT id, name FROM workflow_templates
    WHERE organization_id = $1 AND is_default AND deleted_at IS NULL
), template_steps AS (
    SELECT s.title, s.position, s.required, row_number() OVER (ORDER BY s.position, s.id) AS n
    FROM workflow_template_steps s JOIN template t ON s.template_id = t.id
    WHERE s.deleted_at IS NULL
)"""

# The workflow and its default template's steps, in one statement, unless the building
# was deleted, the key is taken (a concurrent create: nothing is written), or the
# template does not have as many steps as ids were given (nothing is written; the
# caller retries with `step_count` ids). One row per inserted step, in order; a single
# row of flags when nothing (or no step) was inserted.
_INSERT_FROM_DEFAULT_TEMPLATE = (
    _DEFAULT_TEMPLATE  # noqa: S608 - two constant texts joined, no input
    + """, fit AS (
    SELECT EXISTS (SELECT FROM retired_buildings r
                   WHERE r.organization_id = $1 AND r.building_id = $2) AS retired,
           EXISTS (SELECT FROM template) AS has_template,
           (SELECT count(*) FROM template_steps) AS step_count
), workflow AS (
    INSERT INTO workflows (id, uuid, organization_id, building_id, template_id, name, status,
                           assignee_id, due_date, idempotency_key, deleted_at, version)
    SELECT $3::bigint, $4::uuid, $1, $2, t.id, coalesce($5::text, t.name), 'open',
           $6::uuid, $7::date, $8::text, NULL, 1
    FROM template t, fit
    WHERE NOT fit.retired AND fit.step_count = cardinality($9::bigint[])
    ON CONFLICT ON CONSTRAINT uq_workflows_organization_id_idempotency_key DO NOTHING
    RETURNING id, name, updated_at
), steps AS (
    INSERT INTO workflow_steps (id, uuid, workflow_id, title, position, required, done, value,
                                completed_by, completed_at, deleted_at, version)
    SELECT i.id, i.uuid, w.id, s.title, s.position, s.required, false, NULL, NULL, NULL, NULL, 1
    FROM workflow w
    CROSS JOIN template_steps s
    JOIN unnest($9::bigint[], $10::uuid[]) WITH ORDINALITY AS i(id, uuid, n) ON i.n = s.n
    RETURNING id, uuid, title, position, required, updated_at
)
SELECT fit.retired, fit.has_template, fit.step_count,
       w.name AS workflow_name, w.updated_at AS workflow_updated_at,
       s.uuid AS step_uuid, s.title AS step_title, s.position AS step_position,
       s.required AS step_required, s.updated_at AS step_updated_at
FROM fit LEFT JOIN workflow w ON true LEFT JOIN steps s ON true
ORDER BY s.id
"""
)


async def find_by_key(
    connection: asyncpg.Connection, organization_id: uuid.UUID, key: str
) -> asyncpg.Record | None:
    """The workflow created with `key` in the organization, deleted or not, or None."""
    row: asyncpg.Record | None = await connection.fetchrow(_FIND_BY_KEY, organization_id, key)
    return row


# Of (organization, key, building) triples, those with a workflow created with the key
# for that building, deleted or not.
_KEYS_IN_USE = """
SELECT w.organization_id, w.idempotency_key
FROM unnest($1::uuid[], $2::text[], $3::uuid[]) AS k(organization_id, key, building_id)
JOIN workflows w ON w.organization_id = k.organization_id AND w.idempotency_key = k.key
    AND w.building_id = k.building_id
"""


async def keys_in_use(
    connection: asyncpg.Connection, wanted: Sequence[tuple[uuid.UUID, str, uuid.UUID]]
) -> set[tuple[uuid.UUID, str]]:
    """Which `(organization, key, building)` already have their workflow, in one query."""
    if not wanted:
        return set()
    organizations, keys, buildings = (list(column) for column in zip(*wanted, strict=True))
    rows = await connection.fetch(_KEYS_IN_USE, organizations, keys, buildings)
    return {(row["organization_id"], row["idempotency_key"]) for row in rows}


_LOCK_BUILDINGS = "SELECT count(pg_advisory_xact_lock_shared(k)) FROM unnest($1::bigint[]) AS k"


async def lock_buildings(connection: asyncpg.Connection, lock_keys: Sequence[int]) -> None:
    """Take the create locks of many buildings (see `lock_and_find_by_key`) at once."""
    await connection.fetchval(_LOCK_BUILDINGS, list(lock_keys))


# The workflows created with the given (organization, key) pairs, deleted or not.
_BUILDINGS_OF_KEYS = """
SELECT w.organization_id, w.idempotency_key, w.building_id
FROM unnest($1::uuid[], $2::text[]) AS k(organization_id, key)
JOIN workflows w ON w.organization_id = k.organization_id AND w.idempotency_key = k.key
"""


async def buildings_of_keys(
    connection: asyncpg.Connection, wanted: Sequence[tuple[uuid.UUID, str]]
) -> dict[tuple[uuid.UUID, str], uuid.UUID]:
    """For each `(organization, key)` in use, the building its workflow was made for."""
    if not wanted:
        return {}
    organizations, keys = (list(column) for column in zip(*wanted, strict=True))
    rows = await connection.fetch(_BUILDINGS_OF_KEYS, organizations, keys)
    return {(row["organization_id"], row["idempotency_key"]): row["building_id"] for row in rows}


# The default workflows of many buildings of one organization and their steps, in one
# statement, as `_INSERT_FROM_DEFAULT_TEMPLATE` does for one: a retired building or a
# taken key inserts nothing for that building, and a template without `$6` steps
# inserts nothing at all. Building b (from 1) takes step ids (b - 1) * $6 + 1 .. b * $6.
# Rows: the flags and the retired buildings on every row, then per inserted workflow
# (in the order of `$2`) its steps by position; one row of flags when nothing was
# inserted.
_INSERT_DEFAULTS_FROM_TEMPLATE = (
    _DEFAULT_TEMPLATE  # noqa: S608 - two constant texts joined, no input
    + """, wanted AS (
    SELECT w.building_id, w.id, w.uuid, w.key, w.b,
           EXISTS (SELECT FROM retired_buildings r
                   WHERE r.organization_id = $1 AND r.building_id = w.building_id) AS retired
    FROM unnest($2::uuid[], $3::bigint[], $4::uuid[], $5::text[])
         WITH ORDINALITY AS w(building_id, id, uuid, key, b)
), fit AS (
    SELECT EXISTS (SELECT FROM template) AS has_template,
           (SELECT count(*) FROM template_steps) AS step_count,
           (SELECT array_agg(building_id) FROM wanted WHERE retired) AS retired
), workflow AS (
    INSERT INTO workflows (id, uuid, organization_id, building_id, template_id, name, status,
                           assignee_id, due_date, idempotency_key, deleted_at, version)
    SELECT w.id, w.uuid, $1, w.building_id, t.id, t.name, 'open', NULL, NULL, w.key, NULL, 1
    FROM wanted w, template t, fit
    WHERE NOT w.retired AND fit.step_count = $6::int
    ON CONFLICT ON CONSTRAINT uq_workflows_organization_id_idempotency_key DO NOTHING
    RETURNING id, uuid, building_id, name, updated_at
), steps AS (
    INSERT INTO workflow_steps (id, uuid, workflow_id, title, position, required, done, value,
                                completed_by, completed_at, deleted_at, version)
    SELECT i.id, i.uuid, w.id, s.title, s.position, s.required, false, NULL, NULL, NULL, NULL, 1
    FROM workflow w
    JOIN wanted k ON k.id = w.id
    CROSS JOIN template_steps s
    JOIN unnest($7::bigint[], $8::uuid[]) WITH ORDINALITY AS i(id, uuid, n)
      ON i.n = (k.b - 1) * $6::int + s.n
    RETURNING id, uuid, workflow_id, title, position, required, updated_at
)
SELECT fit.has_template, fit.step_count, fit.retired,
       w.uuid AS workflow_uuid, w.building_id AS workflow_building_id,
       w.name AS workflow_name, w.updated_at AS workflow_updated_at,
       s.uuid AS step_uuid, s.title AS step_title, s.position AS step_position,
       s.required AS step_required, s.updated_at AS step_updated_at
FROM fit
LEFT JOIN workflow w ON true
LEFT JOIN wanted k ON k.id = w.id
LEFT JOIN steps s ON s.workflow_id = w.id
ORDER BY k.b, s.position, s.id
"""
)


async def insert_defaults_from_template(
    connection: asyncpg.Connection,
    *,
    organization_id: uuid.UUID,
    buildings: Sequence[tuple[uuid.UUID, int, uuid.UUID, str]],
    step_count: int,
    step_ids: Sequence[int],
    step_public_ids: Sequence[uuid.UUID],
) -> list[asyncpg.Record]:
    """Insert default workflows of `(building, workflow id, public id, key)` rows and
    `step_count` steps each (see `_INSERT_DEFAULTS_FROM_TEMPLATE`)."""
    building_ids, workflow_ids, public_ids, keys = (
        list(column) for column in zip(*buildings, strict=True)
    )
    try:
        rows: list[asyncpg.Record] = await connection.fetch(
            _INSERT_DEFAULTS_FROM_TEMPLATE,
            organization_id,
            building_ids,
            workflow_ids,
            public_ids,
            keys,
            step_count,
            list(step_ids),
            list(step_public_ids),
        )
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise Conflict(
            "the write conflicts with existing data", constraint=exc.constraint_name
        ) from None
    return rows


async def lock_and_find_by_key(
    connection: asyncpg.Connection, lock_key: int, organization_id: uuid.UUID, key: str
) -> asyncpg.Record | None:
    """Take the building's create lock; the workflow created with `key`, or None."""
    row: asyncpg.Record = await connection.fetchrow(
        _LOCK_AND_FIND_BY_KEY, lock_key, organization_id, key
    )
    return None if row["uuid"] is None else row


async def insert_from_default_template(
    connection: asyncpg.Connection,
    *,
    organization_id: uuid.UUID,
    building_id: uuid.UUID,
    workflow_id: int,
    public_id: uuid.UUID,
    name: str | None,
    assignee_id: uuid.UUID | None,
    due_date: date | None,
    idempotency_key: str,
    step_ids: Sequence[int],
    step_public_ids: Sequence[uuid.UUID],
) -> list[asyncpg.Record]:
    """Insert the workflow and its steps (see `_INSERT_FROM_DEFAULT_TEMPLATE`)."""
    try:
        rows: list[asyncpg.Record] = await connection.fetch(
            _INSERT_FROM_DEFAULT_TEMPLATE,
            organization_id,
            building_id,
            workflow_id,
            public_id,
            name,
            assignee_id,
            due_date,
            idempotency_key,
            step_ids,
            step_public_ids,
        )
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise Conflict(
            "the write conflicts with existing data", constraint=exc.constraint_name
        ) from None
    return rows
