"""WatermelonDB's `timestamp` / `last_pulled_at`: an integer cursor into the change feed.

The cursor is the organization's replica version plus one. WatermelonDB refuses a
`timestamp` of 0 (and sends `null` before its first sync), while a fresh organization's
replica is at version 0: the offset keeps every cursor >= 1 and still names a version
boundary exactly ("everything up to version `cursor - 1` has been seen").
"""

from __future__ import annotations

CURSOR_OFFSET = 1
MAX_CURSOR = 2**53 - 1  # a JavaScript number holds integers exactly up to here


def cursor_of(version: int) -> int:
    """The cursor a client stores after seeing everything up to `version`."""
    return version + CURSOR_OFFSET


def version_of(cursor: int) -> int:
    """The replica version a client with `cursor` has seen everything up to."""
    return cursor - CURSOR_OFFSET
