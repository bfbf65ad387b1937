"""Cursor pagination: every list answers `{items, next_cursor}` and takes `cursor`, `limit`.

Cursors are opaque (URL-safe base64 of the last key) so the ordering can change
without breaking clients' assumptions about what a cursor holds.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel

from fieldsync.kit.errors import ValidationFailed

ItemT = TypeVar("ItemT")
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
# Keys are PostgreSQL `bigint`s (snowflake ids are non-negative).
MAX_KEY = (1 << 63) - 1


def encode_cursor(key: int) -> str:
    """Opaque cursor for a keyset position."""
    return base64.urlsafe_b64encode(str(key).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The keyset position inside a cursor; a malformed cursor is a 422.

    Only what `encode_cursor` writes is accepted: base64 of plain decimal digits of a
    key within PostgreSQL's `bigint` range (a larger number would fail in the database
    as a 500 instead of a 422).
    """
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        digits = base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True)
        text = digits.decode("ascii")
    except (ValueError, binascii.Error):  # UnicodeError is a ValueError
        text = ""
    if not (text.isascii() and text.isdigit() and len(text) <= 19 and int(text) <= MAX_KEY):
        raise ValidationFailed(
            "cursor is not one this server issued",
            errors=[{"loc": ["query", "cursor"], "msg": "invalid cursor"}],
        )
    return int(text)


@dataclass(frozen=True)
class PageRequest:
    """A validated page request: where to start and how many (capped)."""

    after_id: int | None
    limit: int

    @classmethod
    def parse(
        cls, cursor: str | None, limit: int | None, *, max_limit: int = MAX_LIMIT
    ) -> PageRequest:
        """Build from query parameters, clamping nothing silently: out-of-range is a 422."""
        size = DEFAULT_LIMIT if limit is None else limit
        if not 1 <= size <= max_limit:
            raise ValidationFailed(
                f"limit must be between 1 and {max_limit}",
                errors=[{"loc": ["query", "limit"], "msg": f"must be 1..{max_limit}"}],
            )
        return cls(after_id=None if cursor is None else decode_cursor(cursor), limit=size)


@dataclass(frozen=True)
class Page(Generic[ItemT]):
    """A page of items and the cursor of the next page (None on the last one)."""

    items: list[ItemT]
    next_cursor: str | None

    @classmethod
    def from_rows(
        cls, rows: list[ItemT], limit: int, *, key: Callable[[ItemT], int]
    ) -> Page[ItemT]:
        """Rows fetched with `limit + 1`: the extra row only says another page exists."""
        if len(rows) > limit:
            rows = rows[:limit]
            return cls(items=rows, next_cursor=encode_cursor(key(rows[-1])))
        return cls(items=rows, next_cursor=None)


class PageOut(BaseModel, Generic[ItemT]):
    """The wire shape of every list response."""

    items: list[ItemT]
    next_cursor: str | None
