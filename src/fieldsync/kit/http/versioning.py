"""Optimistic concurrency over HTTP: the version a write was based on, from `If-Match`."""

from __future__ import annotations

from fieldsync.kit.errors import ValidationFailed


def parse_if_match(value: str | None) -> int | None:
    """`"3"`, `W/"3"` or a bare `3` -> 3; absent -> None; anything else is a 422."""
    if value is None:
        return None
    text = value.strip()
    if text.startswith("W/"):
        text = text[2:]
    text = text.strip('"')
    if not text.isdigit() or not 0 < int(text) < 2**31:
        raise ValidationFailed(
            'If-Match must carry a version number, e.g. "3"',
            errors=[{"loc": ["header", "if-match"], "msg": "not a version"}],
        )
    return int(text)
