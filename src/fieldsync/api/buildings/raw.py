"""The hot paths of buildings on the raw asyncpg pool: reading one, creating one.

No ORM and no session: each is the fewest statements its rules allow (see
`repository.py` for the SQL). Their rules are those of `BuildingService.get` and
`BuildingService.create`, which the session paths (pushed mutations) keep using.
"""

from __future__ import annotations

import uuid

import asyncpg

from fieldsync.api.buildings.repository import fetch_visible_building, insert_building
from fieldsync.api.buildings.schemas import BuildingCreate, BuildingOut
from fieldsync.api.buildings.service import BUILDINGS, BuildingService
from fieldsync.api.models import outbox
from fieldsync.contracts.changes import change_bytes, change_subject, new_change
from fieldsync.contracts.identity import Caller, Role
from fieldsync.kit.errors import Conflict, NotFound, Unauthorized
from fieldsync.kit.ids import new_public_id
from fieldsync.kit.outbox import append_all_raw
from fieldsync.kit.runtime import Runtime


async def read_building(runtime: Runtime, caller: Caller, building_id: uuid.UUID) -> BuildingOut:
    """A building the caller may see, in one statement on the raw pool; 404 otherwise.

    The same visibility as `BuildingService.get`. A miss takes the session path once
    more, so a gone organization or account is still a 401 rather than a 404.
    """
    database = runtime.databases["api"]
    technician = caller.user_id if caller.role == Role.TECHNICIAN else None
    async with database.raw_connection() as connection:
        row = await fetch_visible_building(
            connection, caller.organization_id, technician, building_id
        )
    if row is None:
        async with database.sessions() as session:
            await BuildingService(session=session, runtime=runtime).scope(caller)
        raise NotFound("no such building")
    return building_out_of_row(row)


def building_out_of_row(row: asyncpg.Record) -> BuildingOut:
    """The public shape of a building read with raw SQL (its public columns by name)."""
    return BuildingOut(
        id=row["uuid"],
        name=row["name"],
        address=row["address"],
        city=row["city"],
        country=row["country"],
        latitude=None if row["latitude"] is None else float(row["latitude"]),
        longitude=None if row["longitude"] is None else float(row["longitude"]),
        floors=row["floors"],
        notes=row["notes"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        version=row["version"],
    )


async def add_building(runtime: Runtime, caller: Caller, new: BuildingCreate) -> BuildingOut:
    """A new building and its change, in one transaction on the raw pool (four round trips).

    The same rules as `BuildingService.create`: the caller's organization must still
    exist (else 401), and a client-chosen id must not be taken in any organization,
    deleted or not (else 409). No lookup first: the insert checks both.
    """
    database = runtime.databases["api"]
    ids = runtime.ids["api"]
    public_id = new.id or new_public_id()
    async with database.raw_connection() as connection, connection.transaction():
        row = await insert_building(
            connection,
            organization_id=caller.organization_id,
            building_id=ids.next_id(),
            public_id=public_id,
            fields=new.model_dump(exclude={"id"}),
        )
        if not row["organization_found"]:
            raise Unauthorized("the organization no longer exists")
        if row["uuid"] is None:
            raise Conflict("a building with this id already exists")
        building = building_out_of_row(row)
        change = new_change(
            BUILDINGS,
            record_id=building.id,
            organization_id=caller.organization_id,
            building_id=building.id,
            version=building.version,
            data=building.model_dump(mode="json", exclude={"created_at"}),
        )
        await append_all_raw(
            connection,
            outbox,
            ids,
            [(change_subject(caller.organization_id, BUILDINGS), change_bytes(change))],
        )
    return building
