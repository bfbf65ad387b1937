"""SQL for users."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from fieldsync.api.users.models import User, UserStatus
from fieldsync.contracts.identity import Role
from fieldsync.kit.db.repository import Repository
from fieldsync.kit.pagination import Page, PageRequest


class UserRepository(Repository[User]):
    """Users, always looked up within one organization except by email at sign-in."""

    model = User

    async def get_by_email(self, email: str) -> User | None:
        """The live user with this (case-insensitive) email, in any organization."""
        found: User | None = await self.session.scalar(
            self.select_live().where(User.email == email.lower())
        )
        return found

    async def email_taken(self, email: str) -> bool:
        """Whether any user, even a deleted one, holds this email (emails are never reused)."""
        count = await self.session.scalar(
            select(func.count()).select_from(User).where(User.email == email.lower())
        )
        return bool(count)

    async def get_in_organization(self, organization_id: int, public_id: uuid.UUID) -> User | None:
        """A live user of this organization, or None (other organizations' users included)."""
        found: User | None = await self.session.scalar(
            self.select_live().where(
                User.organization_id == organization_id, User.uuid == public_id
            )
        )
        return found

    async def page_in_organization(self, organization_id: int, request: PageRequest) -> Page[User]:
        """The organization's live users, oldest first."""
        return await self.page(
            self.select_live().where(User.organization_id == organization_id), request
        )

    async def lock_active_admins(self, organization_id: int) -> list[int]:
        """Ids of the organization's active admins, row-locked so two demotions serialise."""
        statement = (
            select(User.id)
            .where(
                User.organization_id == organization_id,
                User.role == Role.ADMIN,
                User.status == UserStatus.ACTIVE,
                User.deleted_at.is_(None),
            )
            .order_by(User.id)
            .with_for_update()
        )
        return list((await self.session.scalars(statement)).all())
