"""Row locks taken when reading a record to change it.

Writes lock the workflow first and its steps after, always in that order: step writes
share the workflow's lock (so a workflow cannot become done while one of its required
steps is being reopened), workflow writes and structural step changes take it alone.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, TypeVar

from sqlalchemy import Select

SelectT = TypeVar("SelectT", bound=Select[Any])


class Lock(Enum):
    """How a read locks the rows it returns."""

    NONE = "none"
    SHARE = "share"
    UPDATE = "update"


def locked(statement: SelectT, lock: Lock) -> SelectT:
    """`statement` with the lock applied, refreshing objects the session already holds."""
    if lock is Lock.NONE:
        return statement
    return statement.with_for_update(read=lock is Lock.SHARE).execution_options(
        populate_existing=True
    )
