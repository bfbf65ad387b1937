"""Who sees what: a technician works in the buildings assigned to them."""

from __future__ import annotations

import uuid

from fieldsync.contracts.identity import Caller, Role
from fieldsync.kit.db.engine import Database

ASSIGNED_BUILDINGS = """
SELECT DISTINCT building_id FROM sync_assignments
WHERE user_id = $1 AND organization_id = $2 AND NOT deleted
"""


async def assigned_buildings(database: Database, caller: Caller) -> frozenset[uuid.UUID]:
    """The buildings currently assigned to `caller`, as the replica knows them."""
    async with database.raw_connection() as connection:
        rows = await connection.fetch(ASSIGNED_BUILDINGS, caller.user_id, caller.organization_id)
    return frozenset(row["building_id"] for row in rows)


async def building_scope(database: Database, caller: Caller) -> frozenset[uuid.UUID] | None:
    """None when the caller works in the whole organization, else their buildings."""
    if caller.role != Role.TECHNICIAN:
        return None
    return await assigned_buildings(database, caller)
