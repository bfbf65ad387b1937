"""SQL for deleted buildings, and the lock that orders a building's creates and delete."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from fieldsync.workflows.buildings.models import RetiredBuilding


def building_lock_key(building_id: uuid.UUID) -> int:
    """The advisory lock key ordering a building's creates and its delete.

    63 bits of the id: PostgreSQL advisory keys are signed bigints.
    """
    return int.from_bytes(building_id.bytes[:8], "big") >> 1


class BuildingRepository:
    """Deleted buildings by (organization, building) public ids."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock_for_create(self, building_id: uuid.UUID) -> None:
        """Hold off the building's delete until this transaction ends (creates share it)."""
        await self.session.execute(
            select(func.pg_advisory_xact_lock_shared(building_lock_key(building_id)))
        )

    async def lock_for_retire(self, building_id: uuid.UUID) -> None:
        """Wait for the building's creates in flight, and hold off new ones."""
        await self.session.execute(
            select(func.pg_advisory_xact_lock(building_lock_key(building_id)))
        )

    async def is_retired(self, organization_id: uuid.UUID, building_id: uuid.UUID) -> bool:
        """Whether the building's delete has been seen."""
        found = await self.session.scalar(
            select(RetiredBuilding.building_id).where(
                RetiredBuilding.organization_id == organization_id,
                RetiredBuilding.building_id == building_id,
            )
        )
        return found is not None

    async def retire(self, organization_id: uuid.UUID, building_id: uuid.UUID) -> None:
        """Remember the building as deleted (again is fine)."""
        await self.session.execute(
            insert(RetiredBuilding)
            .values(organization_id=organization_id, building_id=building_id)
            .on_conflict_do_nothing()
        )
