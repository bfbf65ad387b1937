"""User management: the caller's own account, and an admin's organization."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from fieldsync.api.audit import service as audit
from fieldsync.api.audit.service import AuditKind
from fieldsync.api.auth.passwords import PasswordHasher, check_policy
from fieldsync.api.auth.repository import SessionRepository
from fieldsync.api.deps import ClientInfo
from fieldsync.api.organizations.models import Organization
from fieldsync.api.organizations.repository import OrganizationRepository
from fieldsync.api.users.models import User, UserStatus
from fieldsync.api.users.repository import UserRepository
from fieldsync.api.users.schemas import MeUpdate, UserCreate, UserUpdate
from fieldsync.contracts.identity import Caller, Role
from fieldsync.kit.errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationFailed
from fieldsync.kit.ids import SnowflakeGenerator
from fieldsync.kit.pagination import Page, PageRequest
from fieldsync.kit.runtime import Runtime


async def acting_admin(
    session: AsyncSession, ids: SnowflakeGenerator, caller: Caller
) -> Organization:
    """The caller's organization, once the database confirms they are still an active admin.

    The role in an access token is as old as the token: an admin who was disabled,
    deleted or demoted since must not keep managing users (say, creating another
    admin, or disabling the admin who disabled them) until the token expires. 401 for
    an account that may no longer act, 403 for one that lost the admin role.
    """
    organization = await OrganizationRepository(session, ids).get_by_uuid(caller.organization_id)
    if organization is None:
        raise Unauthorized("the organization no longer exists")
    acting = await UserRepository(session, ids).get_in_organization(organization.id, caller.user_id)
    if acting is None or acting.status != UserStatus.ACTIVE:
        raise Unauthorized("the account is no longer active")
    if acting.role != Role.ADMIN:
        raise Forbidden("requires the admin role")
    return organization


@dataclass
class UserService:
    """User use cases over one request's session, always within the caller's organization."""

    session: AsyncSession
    runtime: Runtime
    hasher: PasswordHasher
    client: ClientInfo

    def __post_init__(self) -> None:
        self.ids = self.runtime.ids["api"]
        self.users = UserRepository(self.session, self.ids)
        self.organizations = OrganizationRepository(self.session, self.ids)
        self.sessions = SessionRepository(self.session, self.ids)

    async def organization_of(self, caller: Caller) -> Organization:
        """The caller's organization (401 when it no longer exists)."""
        organization = await self.organizations.get_by_uuid(caller.organization_id)
        if organization is None:
            raise Unauthorized("the organization no longer exists")
        return organization

    async def acting_admin(self, caller: Caller) -> Organization:
        """The caller's organization, once the database confirms they are still an admin."""
        return await acting_admin(self.session, self.ids, caller)

    async def me(self, caller: Caller) -> tuple[User, Organization]:
        """The caller's own account."""
        organization = await self.organization_of(caller)
        user = await self.users.get_in_organization(organization.id, caller.user_id)
        if user is None:
            raise Unauthorized("the account no longer exists")
        return user, organization

    async def update_me(self, caller: Caller, change: MeUpdate) -> tuple[User, Organization]:
        """Rename, or change the password (which ends every other session)."""
        user, organization = await self.me(caller)
        if change.new_password is not None:
            if change.current_password is None:
                raise ValidationFailed(
                    "changing the password needs the current password",
                    errors=[{"loc": ["body", "current_password"], "msg": "required"}],
                )
            matches, _ = await self.hasher.verify(change.current_password, user.password_hash)
            if not matches:
                raise ValidationFailed(
                    "the current password is wrong",
                    errors=[{"loc": ["body", "current_password"], "msg": "does not match"}],
                )
            check_policy(change.new_password, field="new_password", email=user.email)
            user.password_hash = await self.hasher.hash(change.new_password)
            user.password_changed_at = datetime.now(UTC)
            current = await self.sessions.get_active_by_uuid(caller.session_id)
            ended = await self.sessions.revoke_all_for_user(
                user.id,
                reason="password-changed",
                keep_session_id=None if current is None else current.id,
            )
            self._audit(AuditKind.USER_PASSWORD_CHANGED, user, caller, sessions_ended=ended)
        if change.name is not None:
            user.name = change.name
        await self.users.flush()
        return user, organization

    async def list(self, caller: Caller, request: PageRequest) -> tuple[Page[User], Organization]:
        """The organization's users."""
        organization = await self.acting_admin(caller)
        return await self.users.page_in_organization(organization.id, request), organization

    async def create(self, caller: Caller, new: UserCreate) -> tuple[User, Organization]:
        """Add a user to the caller's organization."""
        organization = await self.acting_admin(caller)
        check_policy(new.password, email=new.email)
        if await self.users.email_taken(new.email):
            raise Conflict("an account with this email already exists")
        user = await self.users.add(
            User(
                organization_id=organization.id,
                email=new.email.lower(),
                name=new.name,
                role=new.role,
                status=UserStatus.ACTIVE,
                password_hash=await self.hasher.hash(new.password),
                version=1,
            )
        )
        self._audit(AuditKind.USER_CREATED, user, caller, role=new.role.value)
        return user, organization

    async def get(self, caller: Caller, user_id: uuid.UUID) -> tuple[User, Organization]:
        """A user of the caller's organization; 404 for any other."""
        organization = await self.acting_admin(caller)
        user = await self.users.get_in_organization(organization.id, user_id)
        if user is None:
            raise NotFound("no such user")
        return user, organization

    async def update(
        self, caller: Caller, user_id: uuid.UUID, change: UserUpdate
    ) -> tuple[User, Organization]:
        """Change role, status or name; never leaves the organization without an active admin."""
        user, organization = await self.get(caller, user_id)
        self.users.check_version(user, change.version)
        loses_admin = (
            user.role == Role.ADMIN
            and user.status == UserStatus.ACTIVE
            and (
                (change.role is not None and change.role != Role.ADMIN)
                or change.status == UserStatus.DISABLED
            )
        )
        if loses_admin:
            await self._keep_an_admin(organization, user)
        if change.role is not None and change.role != user.role:
            self._audit(
                AuditKind.USER_ROLE_CHANGED, user, caller, before=user.role, after=change.role
            )
            user.role = change.role
        if change.status is not None and change.status != user.status:
            self._audit(
                AuditKind.USER_STATUS_CHANGED, user, caller, before=user.status, after=change.status
            )
            user.status = change.status
            if change.status == UserStatus.DISABLED:
                await self.sessions.revoke_all_for_user(user.id, reason="disabled")
        if change.name is not None:
            user.name = change.name
        await self.users.flush()
        return user, organization

    async def delete(
        self, caller: Caller, user_id: uuid.UUID, *, expected_version: int | None
    ) -> None:
        """Soft-delete a user and end their sessions (not the last active admin)."""
        user, organization = await self.get(caller, user_id)
        if user.role == Role.ADMIN and user.status == UserStatus.ACTIVE:
            await self._keep_an_admin(organization, user)
        await self.users.soft_delete(user, expected_version=expected_version)
        await self.sessions.revoke_all_for_user(user.id, reason="deleted")
        self._audit(AuditKind.USER_DELETED, user, caller)

    async def _keep_an_admin(self, organization: Organization, leaving: User) -> None:
        admins = await self.users.lock_active_admins(organization.id)
        if admins == [leaving.id]:
            raise Conflict("an organization needs at least one active admin")

    def _audit(self, kind: AuditKind, user: User, caller: Caller, **detail: object) -> None:
        event = audit.build_event(
            kind,
            organization_id=user.organization_id,
            actor_id=caller.user_id,
            user_id=user.uuid,
            ip=self.client.ip,
            **detail,
        )
        audit.record(session=self.session, ids=self.ids, event=event)
