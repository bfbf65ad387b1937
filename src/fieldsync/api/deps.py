"""Dependencies of the api service's endpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from fieldsync.api.auth.passwords import PasswordHasher
from fieldsync.kit.http.deps import RuntimeDep, database_session, runtime_of

__all__ = ["ApiSession", "RuntimeDep", "password_hasher"]

ApiSession = Annotated[AsyncSession, Depends(database_session("api"), scope="function")]


async def password_hasher(request: Request) -> PasswordHasher:
    """The process's password hasher, built once from the settings."""
    runtime = runtime_of(request)
    hasher = runtime.resources.get("api.password_hasher")
    if not isinstance(hasher, PasswordHasher):
        settings = runtime.settings
        hasher = PasswordHasher(
            memory_kib=settings.password_hash_memory_kib,
            time_cost=settings.password_hash_time_cost,
            parallelism=settings.password_hash_parallelism,
        )
        runtime.resources["api.password_hasher"] = hasher
    return hasher


Hasher = Annotated[PasswordHasher, Depends(password_hasher)]


class ClientInfo:
    """Where a request came from, for sessions and the audit log."""

    def __init__(self, request: Request) -> None:
        self.ip = request.client.host if request.client else "unknown"
        self.device = (request.headers.get("user-agent") or "unknown")[:200]


async def client_info(request: Request) -> ClientInfo:
    """Where the request came from (async: a class dependency would run in a thread)."""
    return ClientInfo(request)


Client = Annotated[ClientInfo, Depends(client_info)]
