"""HTTP endpoints of buildings and their assignees."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Response, status

from fieldsync.api.buildings.raw import add_building, read_building
from fieldsync.api.buildings.schemas import (
    AssigneeOut,
    AssigneePage,
    BuildingCreate,
    BuildingCreated,
    BuildingOut,
    BuildingPage,
    BuildingSort,
    BuildingUpdate,
)
from fieldsync.api.buildings.service import (
    BuildingService,
    building_out,
    request_default_workflow,
)
from fieldsync.api.deps import ApiSession, RuntimeDep
from fieldsync.contracts.identity import Role
from fieldsync.kit.http.auth import CurrentCaller, require_role
from fieldsync.kit.http.versioning import parse_if_match
from fieldsync.kit.pagination import MAX_LIMIT, PageRequest
from fieldsync.kit.validation import StorableText

router = APIRouter(prefix="/api/v1/buildings", tags=["buildings"])
Manager = Annotated[object, require_role(Role.ADMIN, Role.MANAGER)]


async def building_service(session: ApiSession, runtime: RuntimeDep) -> BuildingService:
    """The building use cases for this request."""
    return BuildingService(session=session, runtime=runtime)


Buildings = Annotated[BuildingService, Depends(building_service)]
IfMatch = Annotated[str | None, Header(max_length=40)]


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_building(
    body: BuildingCreate,
    caller: CurrentCaller,
    _: Manager,
    runtime: RuntimeDep,
    response: Response,
) -> BuildingCreated:
    """Add a building (manager or admin); the body may carry a client-generated `id`.

    The building is committed first, then its default workflow is requested. If the
    workflows service cannot answer now, the answer is still 201 with
    `workflow_status: "pending"`: the building's change event creates the workflow
    when the service is back.
    """
    building = await add_building(runtime, caller, body)
    response.headers["Location"] = f"/api/v1/buildings/{building.id}"
    workflow = await request_default_workflow(runtime, caller, building.id)
    return BuildingCreated(
        **building.model_dump(),
        workflow=workflow,
        workflow_status="created" if workflow is not None else "pending",
    )


@router.get("")
async def list_buildings(
    caller: CurrentCaller,
    buildings: Buildings,
    q: Annotated[
        StorableText | None, Query(max_length=200, description="Search in name and address")
    ] = None,
    city: Annotated[StorableText | None, Query(max_length=120)] = None,
    country: Annotated[str | None, Query(pattern=r"^[A-Za-z]{2}$")] = None,
    updated_since: Annotated[datetime | None, Query()] = None,
    sort: Annotated[BuildingSort, Query()] = BuildingSort.CREATED,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int | None, Query()] = None,
) -> BuildingPage:
    """Buildings you may see (technicians: those assigned to you), paged and filtered."""
    page = PageRequest.parse(None, limit, max_limit=MAX_LIMIT)
    rows, next_cursor = await buildings.list(
        caller,
        query=q,
        city=city,
        country=country,
        updated_since=updated_since,
        sort=sort,
        cursor=cursor,
        limit=page.limit,
    )
    return BuildingPage(items=[building_out(row) for row in rows], next_cursor=next_cursor)


@router.get("/{building_id}")
async def get_building(
    building_id: uuid.UUID, caller: CurrentCaller, runtime: RuntimeDep
) -> BuildingOut:
    """One building (404 if it is not yours to see)."""
    return await read_building(runtime, caller, building_id)


@router.patch("/{building_id}")
async def update_building(
    building_id: uuid.UUID,
    body: BuildingUpdate,
    caller: CurrentCaller,
    _: Manager,
    buildings: Buildings,
    if_match: IfMatch = None,
) -> BuildingOut:
    """Change fields (manager or admin). Send the version you read (`If-Match` or `version`);
    a stale one is a 409 carrying the current record."""
    if body.version is None:
        body = body.model_copy(update={"version": parse_if_match(if_match)})
    building, _ = await buildings.update(caller, building_id, body)
    return building_out(building)


@router.delete("/{building_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_building(
    building_id: uuid.UUID,
    caller: CurrentCaller,
    _: Manager,
    buildings: Buildings,
    if_match: IfMatch = None,
) -> None:
    """Remove a building (manager or admin); its workflows are cancelled."""
    await buildings.delete(caller, building_id, expected_version=parse_if_match(if_match))


@router.get("/{building_id}/assignees")
async def list_assignees(
    building_id: uuid.UUID,
    caller: CurrentCaller,
    buildings: Buildings,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int | None, Query()] = None,
) -> AssigneePage:
    """Users assigned to the building."""
    page = await buildings.assignees(caller, building_id, PageRequest.parse(cursor, limit))
    return AssigneePage(
        items=[
            AssigneeOut(id=user.uuid, name=user.name, email=user.email, role=user.role)
            for user in page.items
        ],
        next_cursor=page.next_cursor,
    )


@router.put("/{building_id}/assignees/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def assign(
    building_id: uuid.UUID,
    user_id: uuid.UUID,
    caller: CurrentCaller,
    _: Manager,
    buildings: Buildings,
) -> None:
    """Assign a user to the building (manager or admin; idempotent)."""
    await buildings.assign(caller, building_id, user_id)


@router.delete("/{building_id}/assignees/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def unassign(
    building_id: uuid.UUID,
    user_id: uuid.UUID,
    caller: CurrentCaller,
    _: Manager,
    buildings: Buildings,
) -> None:
    """Remove the user's assignment (manager or admin)."""
    await buildings.unassign(caller, building_id, user_id)
