"""SQL for sessions and refresh tokens."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, func, select, update

from fieldsync.api.auth.models import AuthSession, RefreshToken
from fieldsync.kit.db.repository import Repository
from fieldsync.kit.pagination import Page, PageRequest


class SessionRepository(Repository[AuthSession]):
    """Sign-in sessions of users."""

    model = AuthSession

    async def get_for_user(self, user_id: int, public_id: uuid.UUID) -> AuthSession | None:
        """A live session of this user by its public id."""
        found: AuthSession | None = await self.session.scalar(
            self.select_live().where(
                AuthSession.user_id == user_id,
                AuthSession.uuid == public_id,
                AuthSession.revoked_at.is_(None),
            )
        )
        return found

    async def get_active_by_uuid(self, public_id: uuid.UUID) -> AuthSession | None:
        """A session that is neither revoked nor expired."""
        found: AuthSession | None = await self.session.scalar(
            self.select_live().where(
                AuthSession.uuid == public_id,
                AuthSession.revoked_at.is_(None),
                AuthSession.expires_at > func.now(),
            )
        )
        return found

    async def page_active_for_user(self, user_id: int, request: PageRequest) -> Page[AuthSession]:
        """The user's sessions that can still refresh."""
        statement = self.select_live().where(
            AuthSession.user_id == user_id,
            AuthSession.revoked_at.is_(None),
            AuthSession.expires_at > func.now(),
        )
        return await self.page(statement, request)

    async def revoke_all_for_user(
        self, user_id: int, *, reason: str, keep_session_id: int | None = None
    ) -> int:
        """Revoke every live session of a user (but `keep_session_id`); how many were revoked."""
        statement = (
            update(AuthSession)
            .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
            .values(
                revoked_at=func.now(),
                revoked_reason=reason,
                version=AuthSession.version + 1,
                updated_at=func.now(),
            )
            .returning(AuthSession.id)
            .execution_options(synchronize_session=False)
        )
        if keep_session_id is not None:
            statement = statement.where(AuthSession.id != keep_session_id)
        revoked = (await self.session.execute(statement)).scalars().all()
        return len(revoked)


class RefreshTokenRepository:
    """Refresh tokens by hash."""

    def __init__(self, session: SessionRepository) -> None:
        self._sessions = session
        self.session = session.session

    async def add(self, session_id: int, token_hash: bytes) -> RefreshToken:
        """Store a new token of a session family."""
        token = RefreshToken(
            id=self._sessions.ids.next_id(), session_id=session_id, token_hash=token_hash
        )
        self.session.add(token)
        await self.session.flush()
        return token

    async def lock_by_hash(self, token_hash: bytes) -> RefreshToken | None:
        """The token with this hash, row-locked so two concurrent refreshes serialise."""
        found: RefreshToken | None = await self.session.scalar(
            select(RefreshToken).where(RefreshToken.token_hash == token_hash).with_for_update()
        )
        return found

    async def discard_unused(self, session_id: int) -> None:
        """Delete every still-unused token of a session: superseded before anyone used it.

        Deleted rather than marked used, so presenting one later is an unknown token
        (refused) and neither counts as a retry within the reuse grace nor as reuse.
        """
        await self.session.execute(
            delete(RefreshToken)
            .where(RefreshToken.session_id == session_id, RefreshToken.rotated_at.is_(None))
            .execution_options(synchronize_session=False)
        )
