"""Sign-up, sign-in, refresh-token rotation with reuse detection, sign-out.

Refresh tokens are 256-bit random strings; only their SHA-256 is stored. Every use
rotates the token. Presenting a token that was already rotated means it leaked (or a
response was lost): within `refresh_reuse_grace_seconds` of its rotation it is
treated as a lost response and answered with a fresh pair (the pair issued moments
ago is discarded, so its refresh token is refused); after that, the whole session
family is revoked.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from fieldsync.api.audit import service as audit
from fieldsync.api.audit.service import AuditKind
from fieldsync.api.auth.models import AuthSession
from fieldsync.api.auth.passwords import PasswordHasher, check_policy
from fieldsync.api.auth.repository import RefreshTokenRepository, SessionRepository
from fieldsync.api.auth.schemas import TokenPair
from fieldsync.api.deps import ClientInfo
from fieldsync.api.organizations.models import Organization
from fieldsync.api.organizations.repository import OrganizationRepository
from fieldsync.api.users.models import User, UserStatus
from fieldsync.api.users.repository import UserRepository
from fieldsync.contracts.identity import Caller, Role
from fieldsync.kit.db.engine import Database
from fieldsync.kit.errors import Conflict, NotFound, Unauthorized
from fieldsync.kit.pagination import Page, PageRequest
from fieldsync.kit.ratelimit import parse_limits
from fieldsync.kit.runtime import Runtime

INVALID_LOGIN = "invalid email or password"
INVALID_REFRESH = "invalid or expired refresh token"


def hash_refresh_token(token: str) -> bytes:
    """What the database stores of a refresh token."""
    return hashlib.sha256(token.encode()).digest()


def new_refresh_token() -> str:
    """256 bits from the OS's CSPRNG, URL-safe."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


@dataclass
class AuthService:
    """Auth use cases over one request's session."""

    session: AsyncSession
    runtime: Runtime
    hasher: PasswordHasher
    client: ClientInfo

    def __post_init__(self) -> None:
        self.ids = self.runtime.ids["api"]
        self.users = UserRepository(self.session, self.ids)
        self.organizations = OrganizationRepository(self.session, self.ids)
        self.sessions = SessionRepository(self.session, self.ids)
        self.tokens = RefreshTokenRepository(self.sessions)

    async def register(
        self, *, email: str, password: str, name: str, organization_name: str
    ) -> TokenPair:
        """A new organization whose first user is its admin, signed in."""
        await self._limit_auth_attempts()
        check_policy(password, email=email)
        if await self.users.email_taken(email):
            raise Conflict("an account with this email already exists")
        organization = await self.organizations.add(Organization(name=organization_name, version=1))
        user = await self.users.add(
            User(
                organization_id=organization.id,
                email=email.lower(),
                name=name,
                role=Role.ADMIN,
                status=UserStatus.ACTIVE,
                password_hash=await self.hasher.hash(password),
                version=1,
            )
        )
        self._audit(AuditKind.ORGANIZATION_REGISTERED, organization.id, actor=user, user=user)
        return await self._open_session(user, organization)

    async def login(self, *, email: str, password: str) -> TokenPair:
        """Tokens for valid credentials; every failure gets the same answer and cost."""
        await self._limit_auth_attempts()
        account_key = email.lower()
        failed_logins = parse_limits(self.runtime.settings.rate_limit_failed_logins_per_account)
        await self.runtime.rate_limiter.check(failed_logins, "failed-login", account_key)
        user = await self.users.get_by_email(email)
        matches, upgraded_hash = await self.hasher.verify(
            password, None if user is None else user.password_hash
        )
        organization = None if user is None else await self.organizations.get(user.organization_id)
        if user is None or organization is None or not matches or user.status != UserStatus.ACTIVE:
            await self.runtime.rate_limiter.count(failed_logins, "failed-login", account_key)
            event = audit.build_event(
                AuditKind.LOGIN_FAILED,
                organization_id=None if user is None else user.organization_id,
                user_id=None if user is None else user.uuid,
                ip=self.client.ip,
                reason="disabled" if matches and user is not None else "credentials",
            )
            await audit.record_now(database=self._database, ids=self.ids, event=event)
            raise Unauthorized(INVALID_LOGIN)
        if upgraded_hash is not None:
            user.password_hash = upgraded_hash
            await self.users.flush()
        await self.runtime.rate_limiter.clear(failed_logins, "failed-login", account_key)
        self._audit(AuditKind.LOGIN_SUCCEEDED, user.organization_id, actor=user, user=user)
        return await self._open_session(user, organization)

    async def refresh(self, *, refresh_token: str) -> TokenPair:
        """Rotate a refresh token; a replayed one revokes its whole session family."""
        await self._limit_auth_attempts()
        token = await self.tokens.lock_by_hash(hash_refresh_token(refresh_token))
        if token is None:
            raise Unauthorized(INVALID_REFRESH)
        auth_session = await self.sessions.get(token.session_id)
        now = datetime.now(UTC)
        if (
            auth_session is None
            or auth_session.revoked_at is not None
            or auth_session.expires_at <= now
        ):
            raise Unauthorized(INVALID_REFRESH)
        user = await self.users.get(auth_session.user_id)
        if token.rotated_at is not None:
            grace = timedelta(seconds=self.runtime.settings.refresh_reuse_grace_seconds)
            if now - token.rotated_at > grace:
                await self._revoke_family(auth_session, user)
                raise Unauthorized(INVALID_REFRESH)
            # A retry after a lost response: the pair issued moments ago never arrived, so
            # its refresh token is discarded (presenting it later is simply refused).
            await self.tokens.discard_unused(auth_session.id)
        else:
            token.rotated_at = now
        organization = None if user is None else await self.organizations.get(user.organization_id)
        if user is None or organization is None or user.status != UserStatus.ACTIVE:
            raise Unauthorized(INVALID_REFRESH)
        auth_session.last_used_at = now
        auth_session.ip = self.client.ip
        return await self._issue(user, organization, auth_session)

    async def logout(self, caller: Caller) -> None:
        """End the caller's current session."""
        auth_session = await self.sessions.get_active_by_uuid(caller.session_id)
        if auth_session is not None:
            await self._revoke(auth_session, caller, reason="logout")

    async def logout_all(self, caller: Caller) -> int:
        """End every session of the caller; how many were ended."""
        user = await self._user_of(caller)
        revoked = await self.sessions.revoke_all_for_user(user.id, reason="logout-all")
        self._audit(
            AuditKind.SESSIONS_REVOKED, user.organization_id, actor=user, user=user, count=revoked
        )
        return revoked

    async def list_sessions(self, caller: Caller, request: PageRequest) -> Page[AuthSession]:
        """The caller's sessions that can still refresh."""
        user = await self._user_of(caller)
        return await self.sessions.page_active_for_user(user.id, request)

    async def revoke_session(self, caller: Caller, session_id: uuid.UUID) -> None:
        """End one of the caller's own sessions (404 for anyone else's)."""
        user = await self._user_of(caller)
        auth_session = await self.sessions.get_for_user(user.id, session_id)
        if auth_session is None:
            raise NotFound("no such session")
        await self._revoke(auth_session, caller, reason="revoked")

    # -- helpers -----------------------------------------------------------------

    @property
    def _database(self) -> Database:
        return self.runtime.databases["api"]

    async def _limit_auth_attempts(self) -> None:
        limits = parse_limits(self.runtime.settings.rate_limit_auth_per_ip)
        await self.runtime.rate_limiter.hit(limits, "auth-ip", self.client.ip)

    async def _user_of(self, caller: Caller) -> User:
        user = await self.users.get_by_uuid(caller.user_id)
        if user is None:
            raise Unauthorized("the account no longer exists")
        return user

    async def _open_session(self, user: User, organization: Organization) -> TokenPair:
        days = self.runtime.settings.refresh_token_days
        auth_session = await self.sessions.add(
            AuthSession(
                user_id=user.id,
                device=self.client.device,
                ip=self.client.ip,
                expires_at=datetime.now(UTC) + timedelta(days=days),
                version=1,
            )
        )
        return await self._issue(user, organization, auth_session)

    async def _issue(
        self, user: User, organization: Organization, auth_session: AuthSession
    ) -> TokenPair:
        signer = self.runtime.token_signer
        assert signer is not None, "the runtime refuses to start the api without a signing key"
        refresh_token = new_refresh_token()
        await self.tokens.add(auth_session.id, hash_refresh_token(refresh_token))
        caller = Caller(
            user_id=user.uuid,
            organization_id=organization.uuid,
            role=user.role,
            session_id=auth_session.uuid,
        )
        return TokenPair(
            access_token=signer.issue(caller),
            refresh_token=refresh_token,
            expires_in=signer.lifetime_seconds,
        )

    async def _revoke(self, auth_session: AuthSession, caller: Caller, *, reason: str) -> None:
        auth_session.revoked_at = datetime.now(UTC)
        auth_session.revoked_reason = reason
        await self.sessions.flush()
        user = await self.users.get(auth_session.user_id)
        organization_id = None if user is None else user.organization_id
        self._audit(
            AuditKind.SESSION_REVOKED,
            organization_id,
            actor_id=caller.user_id,
            user=user,
            session=str(auth_session.uuid),
            reason=reason,
        )

    async def _revoke_family(self, auth_session: AuthSession, user: User | None) -> None:
        """Reuse detected: revoke the session and keep that decision though the request fails."""
        auth_session.revoked_at = datetime.now(UTC)
        auth_session.revoked_reason = "refresh-reuse"
        self._audit(
            AuditKind.REFRESH_REUSED,
            None if user is None else user.organization_id,
            user=user,
            session=str(auth_session.uuid),
        )
        await self.sessions.flush()
        # The request answers 401, and the edge commits only successes: commit here.
        await self.session.commit()

    def _audit(
        self,
        kind: AuditKind,
        organization_id: int | None,
        *,
        actor: User | None = None,
        actor_id: uuid.UUID | None = None,
        user: User | None = None,
        **detail: object,
    ) -> None:
        event = audit.build_event(
            kind,
            organization_id=organization_id,
            actor_id=actor.uuid if actor is not None else actor_id,
            user_id=None if user is None else user.uuid,
            ip=self.client.ip,
            **detail,
        )
        audit.record(session=self.session, ids=self.ids, event=event)
