"""SQL for buildings and assignments."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Any

import asyncpg
import orjson
from sqlalchemy import ColumnElement, Select, func, or_, select, tuple_

from fieldsync.api.buildings.models import Building, BuildingAssignment
from fieldsync.api.buildings.schemas import BuildingSort
from fieldsync.api.organizations.models import Organization
from fieldsync.api.users.models import User
from fieldsync.kit.db.repository import Repository
from fieldsync.kit.errors import Conflict, ValidationFailed
from fieldsync.kit.pagination import Page, PageRequest

_SORT_COLUMNS: dict[str, Any] = {
    "created_at": Building.id,  # snowflake ids grow with creation time
    "updated_at": Building.updated_at,
    "name": Building.name,
}


def _bad_cursor() -> ValidationFailed:
    return ValidationFailed(
        "cursor is not one this server issued",
        errors=[{"loc": ["query", "cursor"], "msg": "invalid cursor"}],
    )


def encode_sort_cursor(sort: BuildingSort, value: Any, row_id: int) -> str:
    """Opaque position after `row_id` in the `sort` ordering."""
    if isinstance(value, datetime):
        value = value.isoformat()
    raw = orjson.dumps([sort.value, value, row_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_sort_cursor(cursor: str, sort: BuildingSort) -> tuple[Any, int]:
    """The (sort value, id) inside a cursor issued for the same ordering."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        kind, value, row_id = orjson.loads(raw)
    except (ValueError, TypeError, binascii.Error):
        raise _bad_cursor() from None
    # `type(...) is int`: a JSON `true` is an int to isinstance, and a bool id reaches
    # PostgreSQL as `bigint > boolean` (a 500, not a 422).
    if kind != sort.value or type(row_id) is not int or not 0 <= row_id < 2**63:
        raise _bad_cursor()
    column = sort.value.lstrip("-")
    try:
        if column == "updated_at":
            value = datetime.fromisoformat(value)
            if value.tzinfo is None:  # issued cursors are always zone-aware
                raise ValueError
        elif column == "name":
            # What a stored name can be: PostgreSQL rejects a NUL in a parameter (a 500).
            if not isinstance(value, str) or "\x00" in value or len(value) > 200:
                raise TypeError
        elif column == "created_at":
            value = row_id
    except (TypeError, ValueError):
        raise _bad_cursor() from None
    return value, row_id


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# The GET path's one statement, for asyncpg directly: a single-row read needs no ORM,
# no session and no transaction (BEGIN/COMMIT would be two of its three round trips).
_VISIBLE_BUILDING = """
SELECT b.uuid, b.name, b.address, b.city, b.country, b.latitude, b.longitude, b.floors,
       b.notes, b.created_at, b.updated_at, b.version
FROM buildings b
JOIN organizations o ON o.id = b.organization_id
WHERE o.uuid = $1 AND o.deleted_at IS NULL AND b.uuid = $2 AND b.deleted_at IS NULL
  AND ($3::uuid IS NULL OR b.id IN (
    SELECT a.building_id FROM building_assignments a JOIN users u ON u.id = a.user_id
    WHERE u.uuid = $3 AND u.organization_id = o.id AND u.deleted_at IS NULL
      AND a.deleted_at IS NULL))
"""


async def fetch_visible_building(
    connection: asyncpg.Connection,
    organization_id: uuid.UUID,
    technician_id: uuid.UUID | None,
    public_id: uuid.UUID,
) -> asyncpg.Record | None:
    """The public fields of one visible building (as `get_visible_to` finds it), or None."""
    row: asyncpg.Record | None = await connection.fetchrow(
        _VISIBLE_BUILDING, organization_id, public_id, technician_id
    )
    return row


# The POST path's write, for asyncpg in the caller's transaction: the organization check
# and the insert in one statement. A taken public id (in any organization, deleted or
# not) inserts nothing instead of failing, so the transaction needs no savepoint.
_INSERT_BUILDING = """
WITH organization AS (
    SELECT id FROM organizations WHERE uuid = $1 AND deleted_at IS NULL
), inserted AS (
    INSERT INTO buildings (id, uuid, organization_id, name, address, city, country, latitude,
                           longitude, floors, notes, deleted_at, version)
    SELECT $2::bigint, $3::uuid, organization.id, $4::text, $5::text, $6::text, $7::text,
           $8::numeric, $9::numeric, $10::int, $11::text, NULL, 1
    FROM organization
    ON CONFLICT ON CONSTRAINT uq_buildings_uuid DO NOTHING
    RETURNING uuid, name, address, city, country, latitude, longitude, floors, notes,
              created_at, updated_at, version
)
SELECT EXISTS (SELECT FROM organization) AS organization_found, inserted.*
FROM (VALUES (1)) AS one LEFT JOIN inserted ON true
"""


async def insert_building(
    connection: asyncpg.Connection,
    *,
    organization_id: uuid.UUID,
    building_id: int,
    public_id: uuid.UUID,
    fields: dict[str, Any],
) -> asyncpg.Record:
    """Insert a building into the live organization with this public id, in one statement.

    The row has `organization_found` and, when the building was inserted, its public
    fields (`uuid` is None when the organization is gone or the public id is taken).
    """
    try:
        row: asyncpg.Record = await connection.fetchrow(
            _INSERT_BUILDING,
            organization_id,
            building_id,
            public_id,
            fields["name"],
            fields["address"],
            fields["city"],
            fields["country"],
            fields["latitude"],
            fields["longitude"],
            fields["floors"],
            fields["notes"],
        )
    except asyncpg.IntegrityConstraintViolationError as exc:
        # Not expected past validation; still the caller's conflict, naming the constraint.
        raise Conflict(
            "the write conflicts with existing data", constraint=exc.constraint_name
        ) from None
    return row


class BuildingRepository(Repository[Building]):
    """Buildings within one organization; technicians see only their assignments."""

    model = Building

    def visible(self, organization_id: int, technician_id: int | None) -> Select[Building]:
        """Live buildings of the organization, narrowed to a technician's assignments."""
        statement = self.select_live().where(Building.organization_id == organization_id)
        if technician_id is not None:
            assigned = select(BuildingAssignment.building_id).where(
                BuildingAssignment.user_id == technician_id,
                BuildingAssignment.deleted_at.is_(None),
            )
            statement = statement.where(Building.id.in_(assigned))
        return statement

    async def get_visible(
        self, organization_id: int, technician_id: int | None, public_id: uuid.UUID
    ) -> Building | None:
        """One visible building by public id."""
        found: Building | None = await self.session.scalar(
            self.visible(organization_id, technician_id).where(Building.uuid == public_id)
        )
        return found

    async def get_visible_to(
        self, organization_id: uuid.UUID, technician_id: uuid.UUID | None, public_id: uuid.UUID
    ) -> tuple[Building, Organization] | None:
        """One visible building and its live organization, by public ids, in one query.

        `technician_id` (a user's public id) narrows it to that live user's assignments
        in the organization. None also when the organization or the user is gone: the
        caller tells those apart only on this (rare) path.
        """
        statement = (
            select(Building, Organization)
            .join(Organization, Organization.id == Building.organization_id)
            .where(
                Organization.uuid == organization_id,
                Organization.deleted_at.is_(None),
                Building.uuid == public_id,
                Building.deleted_at.is_(None),
            )
        )
        if technician_id is not None:
            assigned = (
                select(BuildingAssignment.building_id)
                .join(User, User.id == BuildingAssignment.user_id)
                .where(
                    User.uuid == technician_id,
                    User.organization_id == Organization.id,
                    User.deleted_at.is_(None),
                    BuildingAssignment.deleted_at.is_(None),
                )
            )
            statement = statement.where(Building.id.in_(assigned))
        row = (await self.session.execute(statement)).first()
        return None if row is None else (row[0], row[1])

    async def get_for_write(self, organization_id: int, public_id: uuid.UUID) -> Building | None:
        """A building of the organization, deleted or not, locked until the transaction ends.

        The lock makes a compare-and-set on `version` hold until the write: a concurrent
        writer waits here and then reads the version this transaction left.
        """
        found: Building | None = await self.session.scalar(
            select(Building)
            .where(Building.organization_id == organization_id, Building.uuid == public_id)
            .with_for_update()
            # Refresh a copy already in the session: the locked row is the truth.
            .execution_options(populate_existing=True)
        )
        return found

    async def list_visible(
        self,
        organization_id: int,
        technician_id: int | None,
        *,
        query: str | None,
        city: str | None,
        country: str | None,
        updated_since: datetime | None,
        sort: BuildingSort,
        cursor: str | None,
        limit: int,
    ) -> tuple[list[Building], str | None]:
        """A filtered, sorted keyset page; the cursor of the next page or None."""
        statement = self.visible(organization_id, technician_id)
        if query:
            pattern = f"%{_escape_like(query)}%"
            statement = statement.where(
                or_(
                    Building.name.ilike(pattern, escape="\\"),
                    Building.address.ilike(pattern, escape="\\"),
                )
            )
        if city:
            statement = statement.where(func.lower(Building.city) == city.lower())
        if country:
            statement = statement.where(Building.country == country.upper())
        if updated_since is not None:
            statement = statement.where(Building.updated_at >= updated_since)
        column = _SORT_COLUMNS[sort.value.lstrip("-")]
        descending = sort.value.startswith("-")
        if cursor is not None:
            value, row_id = decode_sort_cursor(cursor, sort)
            position: ColumnElement[bool] = (
                tuple_(column, Building.id) < tuple_(value, row_id)
                if descending
                else tuple_(column, Building.id) > tuple_(value, row_id)
            )
            statement = statement.where(position)
        order = (column.desc(), Building.id.desc()) if descending else (column, Building.id)
        rows = list((await self.session.scalars(statement.order_by(*order).limit(limit + 1))).all())
        if len(rows) <= limit:
            return rows, None
        rows = rows[:limit]
        last = rows[-1]
        sort_value = {"created_at": last.id, "updated_at": last.updated_at, "name": last.name}
        return rows, encode_sort_cursor(sort, sort_value[sort.value.lstrip("-")], last.id)


class AssignmentRepository(Repository[BuildingAssignment]):
    """Who is assigned to which building."""

    model = BuildingAssignment

    async def find(self, building_id: int, user_id: int) -> BuildingAssignment | None:
        """The assignment row (live or soft-deleted) of a user to a building."""
        found: BuildingAssignment | None = await self.session.scalar(
            select(BuildingAssignment).where(
                BuildingAssignment.building_id == building_id, BuildingAssignment.user_id == user_id
            )
        )
        return found

    async def page_assignees(self, building_id: int, request: PageRequest) -> Page[User]:
        """Live users assigned to a building."""
        statement = (
            select(User)
            .join(BuildingAssignment, BuildingAssignment.user_id == User.id)
            .where(
                BuildingAssignment.building_id == building_id,
                BuildingAssignment.deleted_at.is_(None),
                User.deleted_at.is_(None),
            )
        )
        if request.after_id is not None:
            statement = statement.where(User.id > request.after_id)
        rows = list(
            (await self.session.scalars(statement.order_by(User.id).limit(request.limit + 1))).all()
        )
        return Page.from_rows(rows, request.limit, key=lambda user: user.id)

    async def building_ids_of(self, user_id: int) -> list[int]:
        """Buildings a user is assigned to."""
        statement = select(BuildingAssignment.building_id).where(
            BuildingAssignment.user_id == user_id, BuildingAssignment.deleted_at.is_(None)
        )
        return list((await self.session.scalars(statement)).all())
