"""Input types shared by every schema: text that PostgreSQL can store as given.

PostgreSQL `text` cannot hold NUL, and UTF-8 cannot encode lone surrogates (which
JSON escapes can smuggle in); either would otherwise surface as a 500 at the
database. Both are refused at validation instead, with a 422 naming the field.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field


def _storable(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no unpaired surrogates)") from None
    return value


StorableText = Annotated[str, Field(pattern=r"^[^\x00]*$"), AfterValidator(_storable)]
"""Text of any length that the database stores unchanged (bound it with Field)."""

Name = Annotated[StorableText, Field(min_length=1, max_length=200)]
"""A display name: 1 to 200 characters."""
