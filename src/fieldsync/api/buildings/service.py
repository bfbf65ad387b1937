"""Building use cases: scoped to the caller's organization, technicians to their assignments."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from fieldsync.api.buildings.models import Building, BuildingAssignment
from fieldsync.api.buildings.repository import (
    AssignmentRepository,
    BuildingRepository,
)
from fieldsync.api.buildings.schemas import (
    BuildingCreate,
    BuildingOut,
    BuildingSort,
    BuildingUpdate,
    WorkflowSummary,
)
from fieldsync.api.changes import change_log
from fieldsync.api.organizations.models import Organization
from fieldsync.api.organizations.repository import OrganizationRepository
from fieldsync.api.users.models import User, UserStatus
from fieldsync.api.users.repository import UserRepository
from fieldsync.contracts import workflows
from fieldsync.contracts.changes import ChangeOp
from fieldsync.contracts.identity import Caller, Role
from fieldsync.kit.errors import Conflict, FieldsyncError, NotFound, Unauthorized
from fieldsync.kit.ids import new_public_id
from fieldsync.kit.logging import get_logger
from fieldsync.kit.pagination import Page, PageRequest
from fieldsync.kit.runtime import Runtime

log = get_logger(__name__)

BUILDINGS = "buildings"
# The unique index on public ids (named by the metadata's convention).
UUID_CONSTRAINT = "uq_buildings_uuid"
ASSIGNMENTS = "building_assignments"


def building_out(building: Building) -> BuildingOut:
    """The public shape of a building."""
    return BuildingOut(
        id=building.uuid,
        name=building.name,
        address=building.address,
        city=building.city,
        country=building.country,
        latitude=None if building.latitude is None else float(building.latitude),
        longitude=None if building.longitude is None else float(building.longitude),
        floors=building.floors,
        notes=building.notes,
        created_at=building.created_at,
        updated_at=building.updated_at,
        version=building.version,
    )


def building_data(building: Building) -> dict[str, Any]:
    """The fields a building change carries (what sync clients hold)."""
    return building_out(building).model_dump(mode="json", exclude={"created_at"})


DEFAULT_WORKFLOW_TIMEOUT_SECONDS = 2.0


async def request_default_workflow(
    runtime: Runtime, caller: Caller, building_id: uuid.UUID
) -> WorkflowSummary | None:
    """Ask the workflows service for the building's default workflow; None if it can't now.

    Idempotent (the key is the building id), so the change-event path that runs later
    cannot create a second one.
    """
    request = workflows.WorkflowCreate(
        caller=caller,
        building_scope=None,
        building_id=building_id,
        idempotency_key=workflows.default_workflow_key(building_id),
    )
    try:
        created = await runtime.bus.request(
            workflows.CREATE,
            request,
            workflows.WorkflowCreated,
            timeout=DEFAULT_WORKFLOW_TIMEOUT_SECONDS,
        )
    except FieldsyncError as exc:
        log.warning("default workflow pending", building_id=str(building_id), reason=exc.detail)
        return None
    workflow = created.workflow
    return WorkflowSummary(
        id=workflow.id, name=workflow.name, status=workflow.status.value, version=workflow.version
    )


COORDINATE_SCALE = Decimal("0.000001")


@dataclass
class BuildingService:
    """Building use cases over one request's session."""

    session: AsyncSession
    runtime: Runtime

    def __post_init__(self) -> None:
        self.ids = self.runtime.ids["api"]
        self.buildings = BuildingRepository(self.session, self.ids)
        self.assignments = AssignmentRepository(self.session, self.ids)
        self.users = UserRepository(self.session, self.ids)
        self.organizations = OrganizationRepository(self.session, self.ids)
        self._organizations: dict[uuid.UUID, Organization] = {}

    async def scope(self, caller: Caller) -> tuple[Organization, int | None]:
        """The caller's organization, and their user id when they only see assignments."""
        organization = self._organizations.get(caller.organization_id)
        if organization is None:
            organization = await self.organizations.get_by_uuid(caller.organization_id)
            if organization is None:
                raise Unauthorized("the organization no longer exists")
            # Looked up once per session: a pushed batch calls this for every mutation.
            self._organizations[caller.organization_id] = organization
        if caller.role != Role.TECHNICIAN:
            return organization, None
        user = await self.users.get_in_organization(organization.id, caller.user_id)
        if user is None:
            raise Unauthorized("the account no longer exists")
        return organization, user.id

    async def create(self, caller: Caller, new: BuildingCreate) -> tuple[Building, Organization]:
        """A new building; a client-chosen id must not be taken."""
        organization, _ = await self.scope(caller)
        fields = new.model_dump(exclude={"id"})
        # No lookup first: the unique index on the public id refuses a taken one (in any
        # organization, deleted or not), and the transaction then ends anyway.
        try:
            building = await self.buildings.insert(
                organization_id=organization.id,
                uuid=new.id or new_public_id(),
                version=1,
                deleted_at=None,
                **fields,
            )
        except Conflict as exc:
            if exc.extensions.get("constraint") != UUID_CONSTRAINT:
                raise
            raise Conflict("a building with this id already exists") from None
        await self._record(building, organization, ChangeOp.UPSERT)
        return building, organization

    async def get(self, caller: Caller, building_id: uuid.UUID) -> tuple[Building, Organization]:
        """A building the caller may see; 404 otherwise."""
        technician = caller.user_id if caller.role == Role.TECHNICIAN else None
        found = await self.buildings.get_visible_to(caller.organization_id, technician, building_id)
        if found is None:
            await self.scope(caller)  # a gone organization or account is a 401, not a 404
            raise NotFound("no such building")
        building, organization = found
        self._organizations.setdefault(caller.organization_id, organization)
        return building, organization

    async def get_for_write(self, caller: Caller, building_id: uuid.UUID) -> Building | None:
        """The caller's organization's building, deleted or not, locked for a write.

        None when there is none, or when the id is another organization's.
        """
        organization, _ = await self.scope(caller)
        return await self.buildings.get_for_write(organization.id, building_id)

    async def list(
        self,
        caller: Caller,
        *,
        query: str | None,
        city: str | None,
        country: str | None,
        updated_since: datetime | None,
        sort: BuildingSort,
        cursor: str | None,
        limit: int,
    ) -> tuple[list[Building], str | None]:
        """Buildings the caller may see, filtered and sorted."""
        organization, technician_id = await self.scope(caller)
        return await self.buildings.list_visible(
            organization.id,
            technician_id,
            query=query,
            city=city,
            country=country,
            updated_since=updated_since,
            sort=sort,
            cursor=cursor,
            limit=limit,
        )

    async def update(
        self, caller: Caller, building_id: uuid.UUID, change: BuildingUpdate
    ) -> tuple[Building, Organization]:
        """Apply changed fields if based on the current version (409 with the current record)."""
        building, organization = await self.get(caller, building_id)
        if change.version is not None and change.version != building.version:
            raise Conflict(
                f"stale version {change.version}; the current version is {building.version}",
                current_version=building.version,
                current=building_out(building).model_dump(mode="json"),
            )
        fields = change.model_dump(exclude_unset=True, exclude={"version"})
        changed = {
            name: value
            for name, value in fields.items()
            if not _same(getattr(building, name), value)
        }
        # A PATCH that changes nothing keeps the version and emits no change: clients
        # replaying an edit must not wake every other client for nothing.
        if changed:
            await self.buildings.update(building, expected_version=change.version, **changed)
            await self._record(building, organization, ChangeOp.UPSERT)
        return building, organization

    async def delete(
        self, caller: Caller, building_id: uuid.UUID, *, expected_version: int | None
    ) -> Building:
        """Soft-delete; the deletion is a change like any other."""
        building, organization = await self.get(caller, building_id)
        await self.buildings.soft_delete(building, expected_version=expected_version)
        await self._record(building, organization, ChangeOp.DELETE)
        return building

    async def assignees(
        self, caller: Caller, building_id: uuid.UUID, request: PageRequest
    ) -> Page[User]:
        """Users assigned to a building the caller may see."""
        building, _ = await self.get(caller, building_id)
        return await self.assignments.page_assignees(building.id, request)

    async def assign(self, caller: Caller, building_id: uuid.UUID, user_id: uuid.UUID) -> None:
        """Assign a user of the organization (idempotent)."""
        building, organization = await self.get(caller, building_id)
        user = await self.users.get_in_organization(organization.id, user_id)
        if user is None or user.status != UserStatus.ACTIVE:
            raise NotFound("no such active user")
        assignment = await self.assignments.find(building.id, user.id)
        if assignment is None:
            assignment = await self.assignments.add(
                BuildingAssignment(
                    organization_id=organization.id,
                    building_id=building.id,
                    user_id=user.id,
                    version=1,
                )
            )
        elif assignment.deleted_at is not None:
            await self.assignments.update(assignment, expected_version=None, deleted_at=None)
        else:
            return
        await self._record_assignment(assignment, building, user, organization, ChangeOp.UPSERT)

    async def unassign(self, caller: Caller, building_id: uuid.UUID, user_id: uuid.UUID) -> None:
        """Remove an assignment (404 when there is none)."""
        building, organization = await self.get(caller, building_id)
        user = await self.users.get_in_organization(organization.id, user_id)
        assignment = None if user is None else await self.assignments.find(building.id, user.id)
        if user is None or assignment is None or assignment.deleted_at is not None:
            raise NotFound("this user is not assigned to this building")
        await self.assignments.soft_delete(assignment, expected_version=None)
        await self._record_assignment(assignment, building, user, organization, ChangeOp.DELETE)

    async def _record(self, building: Building, organization: Organization, op: ChangeOp) -> None:
        await change_log(self.session, self.ids).record(
            BUILDINGS,
            record_id=building.uuid,
            organization_id=organization.uuid,
            data=building_data(building) if op == ChangeOp.UPSERT else None,
            version=building.version,
            building_id=building.uuid,
        )

    async def _record_assignment(
        self,
        assignment: BuildingAssignment,
        building: Building,
        user: User,
        organization: Organization,
        op: ChangeOp,
    ) -> None:
        await change_log(self.session, self.ids).record(
            ASSIGNMENTS,
            record_id=assignment.uuid,
            organization_id=organization.uuid,
            # The Change contract: a delete carries no data (the record id names it).
            data=(
                {"building_id": str(building.uuid), "user_id": str(user.uuid)}
                if op == ChangeOp.UPSERT
                else None
            ),
            version=assignment.version,
            building_id=building.uuid,
        )


def _same(stored: Any, given: Any) -> bool:
    """Whether a PATCH value equals the stored one, as the column would store it."""
    if isinstance(stored, Decimal) and isinstance(given, float | int):
        # Coordinates are NUMERIC(9, 6): compare at the column's scale, not as binary floats.
        return stored == Decimal(repr(given)).quantize(COORDINATE_SCALE)
    return bool(stored == given)
