"""One transaction per NATS message for the api's handlers, committed before the reply.

HTTP requests get theirs from `ApiSession`; a handler has no FastAPI dependency, so it
opens this one and maps database failures to the errors its caller can act on.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fieldsync.kit.errors import Conflict, Unavailable
from fieldsync.kit.runtime import Runtime

SERVICE_NAME = "api"
# deadlock_detected, serialization_failure: PostgreSQL undid the transaction; a retry works.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})


@contextlib.asynccontextmanager
async def transaction(runtime: Runtime) -> AsyncIterator[AsyncSession]:
    """A session on the api database, committed when the block succeeds.

    A constraint the code did not check first is the caller's `Conflict`; a lost
    connection or a transaction PostgreSQL gave up on (a deadlock between crossing
    writers) is `Unavailable`, which the caller may retry; never an internal error.
    """
    async with runtime.databases[SERVICE_NAME].sessions() as session:
        try:
            yield session
        except (DBAPIError, OSError) as exc:
            _raise_mapped(exc)
            raise
        try:
            await session.commit()
        except (DBAPIError, OSError) as exc:
            _raise_mapped(exc)
            raise


def _raise_mapped(exc: DBAPIError | OSError) -> None:
    """Raise what `exc` means to the caller; return when it means nothing to them (a bug)."""
    if isinstance(exc, IntegrityError):
        raise Conflict("the write conflicts with existing data") from None
    if isinstance(exc, OSError) or exc.connection_invalidated:
        raise Unavailable("the api database cannot be reached") from None
    if getattr(exc.orig, "sqlstate", None) in RETRYABLE_SQLSTATES:
        raise Unavailable("the write crossed a concurrent one; retry it") from None
