"""Cursor pages for list requests (the limit is bounded by the request models)."""

from __future__ import annotations

from fieldsync.kit.errors import ValidationFailed
from fieldsync.kit.pagination import PageRequest


def page_request(cursor: str | None, limit: int) -> PageRequest:
    """The page a list request asks for; a cursor this service did not issue is refused."""
    try:
        return PageRequest.parse(cursor, limit)
    except ValidationFailed:
        raise ValidationFailed(
            "cursor is not one this service issued",
            errors=[{"loc": ["body", "cursor"], "msg": "invalid cursor", "type": "value_error"}],
        ) from None
