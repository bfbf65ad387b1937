"""Pull: the caller's changes after a cursor, shaped as WatermelonDB applies them.

WatermelonDB takes a whole pull in one response. Reading goes page by page through
the native feed (`pull.feed.read_page`); one response stops at the first version
boundary after `MAX_CHANGES` changes and says `has_more: true` (WatermelonDB hands
that to `onDidPullChanges`, and the client synchronizes again). A replacement sync
(the cursor is past the tombstone horizon, or a schema migration asks for tables) is
never split: a partial replacement would delete what a later part brings back, so it
is refused beyond `MAX_REPLACEMENT_CHANGES`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from fieldsync.contracts.collections import COLLECTIONS
from fieldsync.contracts.identity import Caller, Role
from fieldsync.kit.db.engine import Database
from fieldsync.kit.errors import PayloadTooLarge
from fieldsync.sync.pull.checkpoint import Position
from fieldsync.sync.pull.feed import read_page
from fieldsync.sync.watermelon.cursor import cursor_of, version_of
from fieldsync.sync.watermelon.repository import feed_state
from fieldsync.sync.watermelon.schemas import Migration

PAGE_SIZE = 1000
# One response holds at least this many changes when more wait (then up to the end
# of that version: one ingested batch, at most 1,000 changes more).
MAX_CHANGES = 20_000
MAX_REPLACEMENT_CHANGES = 100_000
# WatermelonDB keeps timestamps as numbers of milliseconds.
TIMESTAMP_FIELDS = ("updated_at", "created_at")


@dataclass
class Collected:
    """Changes read so far, one entry per record (a later change replaces an earlier)."""

    records: dict[tuple[str, str], dict[str, Any] | None] = field(default_factory=dict)
    version: int = 0  # everything up to here is in `records`
    purged_through: int = 0
    has_more: bool = False


async def _collect(
    database: Database, caller: Caller, after_version: int, *, include_deletes: bool, cap: int
) -> Collected:
    """Changes after `after_version`, page by page, stopping at a version boundary past `cap`."""
    collected = Collected()
    after = Position(after_version)
    technician = caller.user_id if caller.role == Role.TECHNICIAN else None
    async with database.raw_connection() as connection:
        while True:
            page = await read_page(
                connection,
                organization_id=caller.organization_id,
                technician_id=technician,
                after=after,
                include_deletes=include_deletes,
                limit=PAGE_SIZE,
            )
            collected.purged_through = max(collected.purged_through, page.purged_through)
            for row in page.changes:
                version = int(row["version"])
                if len(collected.records) >= cap and version > after.version:
                    # Everything up to `after.version` is in; the rest is the next pull's.
                    collected.version, collected.has_more = after.version, True
                    return collected
                change = orjson.loads(row["change"])
                collected.records[(row["collection"], change["id"])] = change["data"]
                after = Position(version, row["record_id"], row["collection"])
            if len(page.changes) < PAGE_SIZE:
                collected.version = page.version
                return collected
            # Pages are separate snapshots: a record sent by an earlier page may have
            # been deleted since, and only its tombstone says so.
            include_deletes = True


def _as_watermelon(data: dict[str, Any]) -> dict[str, Any]:
    record = dict(data)
    for name in TIMESTAMP_FIELDS:
        value = record.get(name)
        if isinstance(value, str):
            record[name] = int(datetime.fromisoformat(value).timestamp() * 1000)
    return record


def _render(collected: Collected, *, upserts_as: str) -> dict[str, dict[str, list[Any]]]:
    changes: dict[str, dict[str, list[Any]]] = {
        name: {"created": [], "updated": [], "deleted": []} for name in COLLECTIONS
    }
    for (collection, record_id), data in collected.records.items():
        if data is None:
            changes[collection]["deleted"].append(record_id)
        else:
            changes[collection][upserts_as].append(_as_watermelon(data))
    return changes


async def pull(
    database: Database, caller: Caller, last_pulled_at: int | None, migration: Migration | None
) -> bytes:
    """The JSON body of a pull: `{changes, timestamp[, experimentalStrategy], has_more}`."""
    if last_pulled_at is None:
        # A first sync: everything in scope, as created; there is nothing to delete.
        first = await _collect(database, caller, 0, include_deletes=False, cap=MAX_CHANGES)
        return _body(first, upserts_as="created")
    seen = version_of(last_pulled_at)
    asks_for_tables = migration is not None and migration.touches(set(COLLECTIONS))
    state = await feed_state(database, caller.organization_id)
    if not asks_for_tables and state.purged_through <= seen <= state.version:
        incremental = await _collect(database, caller, seen, include_deletes=True, cap=MAX_CHANGES)
        # Checked again in the feed's own snapshots: a purge may have run in between.
        if incremental.purged_through <= seen:
            return _body(incremental, upserts_as="updated")
    # Deletes this client missed were purged (or the cursor is not from this server),
    # or a migration wants whole tables: send the whole scope, and WatermelonDB drops
    # every synced local record it does not contain.
    everything = await _collect(
        database, caller, 0, include_deletes=False, cap=MAX_REPLACEMENT_CHANGES
    )
    if everything.has_more:
        raise PayloadTooLarge(
            f"a full replacement holds more than {MAX_REPLACEMENT_CHANGES} records; "
            "clear the local database and sync from last_pulled_at=null",
        )
    return _body(everything, upserts_as="updated", strategy="replacement")


def _body(collected: Collected, *, upserts_as: str, strategy: str | None = None) -> bytes:
    body: dict[str, Any] = {
        "changes": _render(collected, upserts_as=upserts_as),
        "timestamp": cursor_of(collected.version),
    }
    if strategy is not None:
        body["experimentalStrategy"] = strategy
    body["has_more"] = collected.has_more
    return orjson.dumps(body)
