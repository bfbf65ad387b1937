"""HTTP endpoints of user accounts."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, status

from fieldsync.api.deps import ApiSession, Client, Hasher, RuntimeDep
from fieldsync.api.organizations.models import Organization
from fieldsync.api.users.models import User
from fieldsync.api.users.schemas import MeUpdate, UserCreate, UserOut, UserPage, UserUpdate
from fieldsync.api.users.service import UserService
from fieldsync.kit.http.auth import AdminCaller, CurrentCaller
from fieldsync.kit.http.versioning import parse_if_match
from fieldsync.kit.pagination import PageRequest

router = APIRouter(prefix="/api/v1/users", tags=["users"])


async def user_service(
    session: ApiSession, runtime: RuntimeDep, hasher: Hasher, client: Client
) -> UserService:
    """The user use cases for this request."""
    return UserService(session=session, runtime=runtime, hasher=hasher, client=client)


Users = Annotated[UserService, Depends(user_service)]


def user_out(user: User, organization: Organization) -> UserOut:
    """The public shape of a user."""
    return UserOut(
        id=user.uuid,
        organization_id=organization.uuid,
        email=user.email,
        name=user.name,
        role=user.role,
        status=user.status,
        created_at=user.created_at,
        updated_at=user.updated_at,
        version=user.version,
    )


@router.get("/me")
async def me(caller: CurrentCaller, users: Users) -> UserOut:
    """Your account."""
    return user_out(*await users.me(caller))


@router.patch("/me")
async def update_me(body: MeUpdate, caller: CurrentCaller, users: Users) -> UserOut:
    """Change your name, or your password (needs the current one; ends your other sessions)."""
    return user_out(*await users.update_me(caller, body))


@router.get("")
async def list_users(
    caller: AdminCaller,
    users: Users,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int | None, Query()] = None,
) -> UserPage:
    """Users of your organization (admin)."""
    page, organization = await users.list(caller, PageRequest.parse(cursor, limit))
    return UserPage(
        items=[user_out(user, organization) for user in page.items], next_cursor=page.next_cursor
    )


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_user(body: UserCreate, caller: AdminCaller, users: Users) -> UserOut:
    """Add a user to your organization (admin)."""
    return user_out(*await users.create(caller, body))


@router.get("/{user_id}")
async def get_user(user_id: uuid.UUID, caller: AdminCaller, users: Users) -> UserOut:
    """A user of your organization (admin)."""
    return user_out(*await users.get(caller, user_id))


@router.patch("/{user_id}")
async def update_user(
    user_id: uuid.UUID,
    body: UserUpdate,
    caller: AdminCaller,
    users: Users,
    if_match: Annotated[str | None, Header(max_length=40)] = None,
) -> UserOut:
    """Change a user's role, status or name (admin). Send the version you read to avoid lost updates."""
    if body.version is None:
        body = body.model_copy(update={"version": parse_if_match(if_match)})
    return user_out(*await users.update(caller, user_id, body))


@router.delete("/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_user(
    user_id: uuid.UUID,
    caller: AdminCaller,
    users: Users,
    if_match: Annotated[str | None, Header(max_length=40)] = None,
) -> None:
    """Remove a user (admin); their sessions end. The last active admin cannot be removed."""
    await users.delete(caller, user_id, expected_version=parse_if_match(if_match))
