"""FastAPI dependencies shared by every service's endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from fieldsync.kit.errors import Conflict, Unavailable
from fieldsync.kit.runtime import Runtime


def runtime_of(request: HTTPConnection) -> Runtime:
    """The process runtime the lifespan stored on the app (requests and WebSockets)."""
    runtime: Runtime = request.app.state.runtime
    return runtime


async def runtime_dependency(request: HTTPConnection) -> Runtime:
    """`runtime_of` as a dependency: async, so FastAPI calls it on the event loop.

    A plain `def` dependency runs in FastAPI's thread pool: a hand-off per request.
    """
    return runtime_of(request)


RuntimeDep = Annotated[Runtime, Depends(runtime_dependency)]


def database_session(service: str) -> Callable[[Request], AsyncIterator[AsyncSession]]:
    """A dependency giving one session per request, committed at the edge.

    Use it with `Depends(..., scope="function")` so the commit happens before the
    response is sent: a 2xx means the write is durable, and a failed commit becomes
    an error response instead of a success that was not kept.
    """

    async def session(request: Request) -> AsyncIterator[AsyncSession]:
        database = runtime_of(request).databases[service]
        async with database.sessions() as db_session:
            try:
                yield db_session
            except IntegrityError:
                # A constraint the code did not check first is still the caller's conflict.
                raise Conflict("the write conflicts with existing data") from None
            try:
                await db_session.commit()
            except IntegrityError:
                raise Conflict("the write conflicts with existing data") from None
            except DBAPIError as exc:
                if exc.connection_invalidated:
                    raise Unavailable("the database connection was lost") from None
                raise

    return session
