"""What the service's handlers and tasks work with, and one transaction per message.

Handlers find the state through the runtime that serves them (`current_runtime`);
`bound` overrides it, for hosting the handlers on a bare `Bus` (replica tests).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fieldsync.kit.db.engine import Database
from fieldsync.kit.errors import Conflict, Unavailable
from fieldsync.kit.ids import SnowflakeGenerator
from fieldsync.kit.runtime import Runtime, current_runtime

SERVICE_NAME = "workflows"
# PostgreSQL's serialization_failure and deadlock_detected.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})

_STATE: contextvars.ContextVar[WorkflowsState] = contextvars.ContextVar("workflows_state")


@dataclass(frozen=True)
class WorkflowsState:
    """The workflows database and this process's id generator for it."""

    database: Database
    ids: SnowflakeGenerator

    @classmethod
    def of(cls, runtime: Runtime) -> WorkflowsState:
        """The state of a started runtime hosting the workflows service."""
        return cls(database=runtime.databases[SERVICE_NAME], ids=runtime.ids[SERVICE_NAME])

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session committed when the block succeeds (before any reply is sent)."""
        async with self.database.sessions() as session:
            try:
                yield session
            except IntegrityError:
                # A constraint the code did not check first is still the caller's conflict.
                raise Conflict("the write conflicts with existing data") from None
            except (DBAPIError, OSError) as exc:
                if isinstance(exc, OSError) or exc.connection_invalidated:
                    raise Unavailable("the workflows database cannot be reached") from None
                if _lost_a_race(exc):
                    raise Unavailable("the transaction lost a race; retry") from None
                raise
            try:
                await session.commit()
            except IntegrityError:
                raise Conflict("the write conflicts with existing data") from None
            except (DBAPIError, OSError) as exc:
                if isinstance(exc, OSError) or exc.connection_invalidated:
                    raise Unavailable("the workflows database connection was lost") from None
                raise


def _lost_a_race(error: DBAPIError) -> bool:
    # A deadlock or serialization failure (a push locks many records in one transaction):
    # nothing was written, and the same request again succeeds.
    return getattr(error.orig, "sqlstate", None) in RETRYABLE_SQLSTATES


@contextlib.contextmanager
def bound(state: WorkflowsState) -> Iterator[None]:
    """Make `state` the one handlers see, for routers served inside this block."""
    token = _STATE.set(state)
    try:
        yield
    finally:
        _STATE.reset(token)


def current() -> WorkflowsState:
    """The bound state, else that of the runtime serving the handler."""
    state = _STATE.get(None)
    return state if state is not None else WorkflowsState.of(current_runtime())
