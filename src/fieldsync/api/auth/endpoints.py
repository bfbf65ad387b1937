"""HTTP endpoints of sign-up, sign-in, tokens and sessions."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Response, status

from fieldsync.api.auth.schemas import (
    LoginIn,
    RefreshIn,
    RegisterIn,
    SessionOut,
    SessionPage,
    TokenPair,
)
from fieldsync.api.auth.service import AuthService
from fieldsync.api.deps import ApiSession, Client, Hasher, RuntimeDep
from fieldsync.kit.errors import ValidationFailed
from fieldsync.kit.http.auth import CurrentCaller
from fieldsync.kit.pagination import PageRequest

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


async def auth_service(
    session: ApiSession, runtime: RuntimeDep, hasher: Hasher, client: Client
) -> AuthService:
    """The auth use cases for this request."""
    return AuthService(session=session, runtime=runtime, hasher=hasher, client=client)


Auth = Annotated[AuthService, Depends(auth_service)]
NO_STORE = {"Cache-Control": "no-store"}


@router.post("/register", status_code=status.HTTP_201_CREATED)
async def register(body: RegisterIn, auth: Auth, response: Response) -> TokenPair:
    """Create an organization with you as its admin, and sign in."""
    response.headers.update(NO_STORE)
    return await auth.register(
        email=str(body.email),
        password=body.password,
        name=body.name,
        organization_name=body.organization_name,
    )


@router.post("/login")
async def login(body: LoginIn, auth: Auth, response: Response) -> TokenPair:
    """Sign in with email and password."""
    response.headers.update(NO_STORE)
    return await auth.login(email=str(body.email), password=body.password)


@router.post("/token", summary="Sign in (OAuth2 password form, for the docs' Authorize button)")
async def token(
    username: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=128)],
    auth: Auth,
    response: Response,
) -> TokenPair:
    """OAuth2 password grant: `username` is the email."""
    try:
        credentials = LoginIn(email=username, password=password)
    except ValueError:
        raise ValidationFailed(
            "username must be an email address",
            errors=[{"loc": ["body", "username"], "msg": "not an email"}],
        ) from None
    response.headers.update(NO_STORE)
    return await auth.login(email=str(credentials.email), password=credentials.password)


@router.post("/refresh")
async def refresh(body: RefreshIn, auth: Auth, response: Response) -> TokenPair:
    """Exchange a refresh token for a new pair (the old one stops working)."""
    response.headers.update(NO_STORE)
    return await auth.refresh(refresh_token=body.refresh_token)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(caller: CurrentCaller, auth: Auth) -> None:
    """End this session: its refresh token stops working at once."""
    await auth.logout(caller)


@router.post("/logout-all", status_code=status.HTTP_204_NO_CONTENT)
async def logout_all(caller: CurrentCaller, auth: Auth) -> None:
    """End every session of your account."""
    await auth.logout_all(caller)


@router.get("/sessions")
async def sessions(
    caller: CurrentCaller,
    auth: Auth,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int | None, Query()] = None,
) -> SessionPage:
    """Your sessions that can still refresh."""
    page = await auth.list_sessions(caller, PageRequest.parse(cursor, limit))
    return SessionPage(
        items=[
            SessionOut(
                id=item.uuid,
                device=item.device,
                ip=item.ip,
                created_at=item.created_at,
                last_used_at=item.last_used_at,
                current=item.uuid == caller.session_id,
            )
            for item in page.items
        ],
        next_cursor=page.next_cursor,
    )


@router.delete("/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_session(session_id: uuid.UUID, caller: CurrentCaller, auth: Auth) -> None:
    """End one of your sessions."""
    await auth.revoke_session(caller, session_id)
