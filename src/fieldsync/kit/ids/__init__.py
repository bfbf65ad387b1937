"""Identifiers: snowflake `bigint` primary keys and UUIDv7 public ids."""

from __future__ import annotations

import uuid

import uuid_utils.compat

from fieldsync.kit.ids.snowflake import SnowflakeGenerator, decompose

__all__ = ["SnowflakeGenerator", "decompose", "new_public_id"]


def new_public_id() -> uuid.UUID:
    """A time-ordered UUIDv7 (RFC 9562) for public ids; stdlib `uuid.UUID` type."""
    return uuid_utils.compat.uuid7()
