"""What a client does when the server's record changed under its edit.

A policy gets the edit it pushed and the server's record (None: deleted on the
server) and returns the data to push again on top of the server's version, or None to
take the server's record as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ConflictPolicy = Callable[
    [str, dict[str, Any] | None, dict[str, Any] | None], dict[str, Any] | None
]


def server_wins(
    collection: str, pushed: dict[str, Any] | None, server: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Keep the server's record; the local edit is dropped (the default)."""
    return None


def client_wins(
    collection: str, pushed: dict[str, Any] | None, server: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Push the local edit again on top of the server's record (unless it was deleted)."""
    if server is None or pushed is None:
        return None
    return pushed
