"""Buildings pushed by sync clients: the `api.buildings.apply` handler (queue `api`).

The sync service routes a client's building mutations here (contracts/mutations.py
has the semantics). Independent creates, updates and deletes are written together
(`bulk.py`, with the same outcomes); every other mutation is applied through
`BuildingService`, so a pushed write follows the same rules, bounds and change
events as the HTTP endpoints.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from fieldsync.api.buildings.bulk import BulkBuildingMutations
from fieldsync.api.buildings.models import Building
from fieldsync.api.buildings.schemas import BuildingCreate, BuildingUpdate
from fieldsync.api.buildings.service import BuildingService, building_data
from fieldsync.api.models import applied_mutations
from fieldsync.api.transaction import transaction
from fieldsync.contracts.changes import ChangeOp
from fieldsync.contracts.collections import BUILDINGS
from fieldsync.contracts.identity import Caller, Role
from fieldsync.contracts.mutations import (
    AppliedMutations,
    ApplyMutations,
    Mutation,
    MutationResult,
    RejectionCode,
    applied,
    apply_in_order,
    rejected,
)
from fieldsync.kit.errors import Conflict, Forbidden, NotFound
from fieldsync.kit.messaging import Router
from fieldsync.kit.runtime import current_runtime

router = Router(queue="api")


@router.handler(BUILDINGS.apply_subject)
async def apply_building_mutations(request: ApplyMutations) -> AppliedMutations:
    """Apply a client's building mutations in one transaction, committed before the reply."""
    runtime = current_runtime()
    async with transaction(runtime) as session:
        mutations = BuildingMutations(
            session, BuildingService(session=session, runtime=runtime), request.caller
        )
        together = BulkBuildingMutations(session, runtime.ids["api"], request.caller)
        return await apply_in_order(
            session, applied_mutations, request, mutations.apply, together.apply
        )


class BuildingMutations:
    """Applies one caller's building mutations in the handler's transaction."""

    def __init__(self, session: AsyncSession, buildings: BuildingService, caller: Caller) -> None:
        self.session = session
        self.buildings = buildings
        self.caller = caller

    async def apply(self, mutation: Mutation) -> MutationResult:
        """Apply one mutation; a `FieldsyncError` or `ValidationError` is its rejection."""
        if mutation.collection != BUILDINGS.name:
            return rejected(
                mutation.mutation_id,
                RejectionCode.VALIDATION,
                f"{BUILDINGS.apply_subject} applies {BUILDINGS.name}, not {mutation.collection}",
                field="collection",
            )
        # As on HTTP: buildings are read-only to technicians, whatever their scope.
        if not self.caller.has_role(Role.ADMIN, Role.MANAGER):
            raise Forbidden("only managers and admins may change buildings")
        if mutation.op == ChangeOp.DELETE:
            return await self._delete(mutation)
        data = mutation.data
        if data is None:
            return rejected(
                mutation.mutation_id,
                RejectionCode.VALIDATION,
                "an upsert carries data",
                field="data",
            )
        unknown = sorted(set(data) - BUILDINGS.writable)
        if unknown:
            return rejected(
                mutation.mutation_id,
                RejectionCode.VALIDATION,
                f"{unknown[0]!r} is not a field a client may write",
                field=unknown[0],
            )
        if mutation.base_version is None:
            return await self._create(mutation, data)
        return await self._update(mutation, data, mutation.base_version)

    async def _create(self, mutation: Mutation, data: dict[str, Any]) -> MutationResult:
        new = BuildingCreate.model_validate({**data, "id": mutation.id})
        taken = await self.buildings.get_for_write(self.caller, mutation.id)
        if taken is not None:
            raise _conflict(taken)
        try:
            # Its own savepoint, so the mutation can still be answered after a lost race.
            async with self.session.begin_nested():
                building, _ = await self.buildings.create(self.caller, new)
        except Conflict:
            # The id is another organization's, or a concurrent push has just taken it.
            taken = await self.buildings.get_for_write(self.caller, mutation.id)
            if taken is None:
                raise NotFound("no such building") from None  # says nothing of the owner
            raise _conflict(taken) from None
        return applied(mutation.mutation_id, building.version)

    async def _update(
        self, mutation: Mutation, data: dict[str, Any], base_version: int
    ) -> MutationResult:
        change = BuildingUpdate.model_validate({**data, "version": base_version})
        building = await self._locked(mutation.id)
        if building.is_deleted or building.version != base_version:
            raise _conflict(building)
        # Unchanged values write nothing: the version stays and no change is published.
        building, _ = await self.buildings.update(self.caller, mutation.id, change)
        return applied(mutation.mutation_id, building.version)

    async def _delete(self, mutation: Mutation) -> MutationResult:
        building = await self.buildings.get_for_write(self.caller, mutation.id)
        # The client wants it gone, and it is: nothing to do, nothing to reveal.
        if building is None:
            return applied(mutation.mutation_id, None)
        if building.is_deleted:
            return applied(mutation.mutation_id, building.version)
        if mutation.base_version is not None and mutation.base_version != building.version:
            raise _conflict(building)
        deleted = await self.buildings.delete(
            self.caller, mutation.id, expected_version=mutation.base_version
        )
        return applied(mutation.mutation_id, deleted.version)

    async def _locked(self, building_id: uuid.UUID) -> Building:
        building = await self.buildings.get_for_write(self.caller, building_id)
        if building is None:
            raise NotFound("no such building")
        return building


def _conflict(building: Building) -> Conflict:
    """The conflict a client resolves against: the current record (None once deleted)."""
    return Conflict(
        f"the building is at version {building.version}",
        current_version=building.version,
        current=None if building.is_deleted else building_data(building),
    )
