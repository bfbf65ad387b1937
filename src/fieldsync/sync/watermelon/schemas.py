"""What WatermelonDB sends: the pull's query parameters and the pushed changes object."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fieldsync.contracts.collections import COLLECTIONS
from fieldsync.kit.errors import ValidationFailed
from fieldsync.sync.watermelon.cursor import MAX_CURSOR

# The migration parameter lists tables and columns: a few KB is plenty.
MAX_MIGRATION_CHARS = 8192
MAX_CURSOR_CHARS = 20


class MigrationColumns(BaseModel):
    """Columns a schema migration added to a table."""

    table: str = Field(max_length=64)
    columns: list[str] = Field(max_length=500)


class Migration(BaseModel):
    """What a migrated client asks for: the tables and columns added since `from`."""

    from_: int = Field(alias="from", ge=0)
    tables: list[str] = Field(max_length=100)
    columns: list[MigrationColumns] = Field(max_length=100)

    def touches(self, tables: set[str]) -> bool:
        """True when the migration added any of `tables`, or columns to them."""
        named = set(self.tables) | {added.table for added in self.columns}
        return bool(named & tables)


def _invalid(parameter: str, message: str) -> ValidationFailed:
    return ValidationFailed(
        f"{parameter}: {message}", errors=[{"loc": ["query", parameter], "msg": message}]
    )


def parse_cursor(raw: str | None, parameter: str = "last_pulled_at") -> int | None:
    """`last_pulled_at` as WatermelonDB sends it: an integer, or `null`/0/absent (None)."""
    if raw is None or raw in ("", "null", "0"):
        return None
    if len(raw) > MAX_CURSOR_CHARS or not raw.isdecimal():
        raise _invalid(parameter, "must be a timestamp this server returned, or null")
    value = int(raw)
    if value > MAX_CURSOR:
        raise _invalid(parameter, "must be a timestamp this server returned, or null")
    return value


def parse_schema_version(raw: str | None) -> int | None:
    """The client's schema version (informational; the server serves one schema)."""
    if raw is None or raw in ("", "null"):
        return None
    if len(raw) > MAX_CURSOR_CHARS or not raw.isdecimal():
        raise _invalid("schema_version", "must be a non-negative integer")
    return int(raw)


def parse_migration(raw: str | None) -> Migration | None:
    """The JSON `migration` parameter of a migration sync (None when absent or null)."""
    if raw is None or raw in ("", "null"):
        return None
    if len(raw) > MAX_MIGRATION_CHARS:
        raise _invalid("migration", f"must be at most {MAX_MIGRATION_CHARS} characters")
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _invalid("migration", "must be JSON or null") from None
    if parsed is None:
        return None
    try:
        return Migration.model_validate(parsed)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise _invalid("migration", f"{where}: {first['msg']}") from None


class PushedRecord(BaseModel):
    """A record as WatermelonDB pushes it: its id and every local column."""

    model_config = ConfigDict(extra="allow")

    id: uuid.UUID

    def columns(self) -> dict[str, Any]:
        """The record's columns (WatermelonDB's `_status`/`_changed` included)."""
        return dict(self.model_extra or {})


class TableChanges(BaseModel):
    """One table's part of a changes object."""

    model_config = ConfigDict(extra="forbid")

    created: list[PushedRecord] = Field(default_factory=list)
    updated: list[PushedRecord] = Field(default_factory=list)
    deleted: list[uuid.UUID] = Field(default_factory=list)

    def count(self) -> int:
        """How many records this table's changes name."""
        return len(self.created) + len(self.updated) + len(self.deleted)


class PushedChanges(BaseModel):
    """WatermelonDB's changes object: tables this server syncs, nothing else."""

    model_config = ConfigDict(extra="forbid")

    buildings: TableChanges | None = None
    workflows: TableChanges | None = None
    workflow_steps: TableChanges | None = None

    def by_table(self) -> dict[str, TableChanges]:
        """The tables present, by name."""
        tables = {name: getattr(self, name) for name in COLLECTIONS}
        return {name: changes for name, changes in tables.items() if changes is not None}


class TableChangesOut(BaseModel):
    """One table's changes in a pull: records (`created`, `updated`) and deleted ids."""

    created: list[dict[str, Any]]
    updated: list[dict[str, Any]]
    deleted: list[str]


class PullOut(BaseModel):
    """What `pullChanges` returns to `synchronize()`."""

    changes: dict[str, TableChangesOut]
    timestamp: int = Field(ge=1, description="pass it as last_pulled_at next time")
    experimentalStrategy: str | None = Field(  # noqa: N815 - WatermelonDB's name
        default=None, description='"replacement": the changes are the whole scope'
    )
    has_more: bool = Field(description="the response stopped at the cap: synchronize again")


class PushOut(BaseModel):
    """A push's reply: an empty object (every change was applied)."""
