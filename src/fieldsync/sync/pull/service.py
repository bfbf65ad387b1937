"""Pull: the caller's changes after a checkpoint, as the JSON body of the reply."""

from __future__ import annotations

from dataclasses import dataclass

from fieldsync.contracts.identity import Caller, Role
from fieldsync.kit.db.engine import Database
from fieldsync.kit.errors import Gone
from fieldsync.sync.pull.checkpoint import Position, decode, encode
from fieldsync.sync.pull.feed import read_page

DEFAULT_LIMIT = 500
MAX_LIMIT = 1000


@dataclass(frozen=True)
class Pulled:
    """One page: each change already JSON, the next checkpoint, and whether more wait."""

    changes: list[str]
    checkpoint: str
    has_more: bool

    def to_json(self) -> bytes:
        """The reply body, assembled from the changes PostgreSQL rendered."""
        body = (
            '{"changes":['
            + ",".join(self.changes)
            + '],"checkpoint":"'
            + self.checkpoint
            + '","has_more":'
            + ("true" if self.has_more else "false")
            + "}"
        )
        return body.encode()


async def pull(database: Database, caller: Caller, checkpoint: str | None, limit: int) -> Pulled:
    """The changes in `caller`'s scope after `checkpoint` (None: everything in scope)."""
    after = decode(checkpoint)
    async with database.raw_connection() as connection:
        page = await read_page(
            connection,
            organization_id=caller.organization_id,
            technician_id=caller.user_id if caller.role == Role.TECHNICIAN else None,
            after=after or Position(0),
            # A first sync has nothing to delete: tombstones are only news to a client
            # that may hold the record.
            include_deletes=after is not None,
            limit=limit + 1,
        )
    # Every delete up to `known` has reached the client (or it never held the record).
    known = page.version if after is None else max(after.version, after.since or 0)
    if after is not None and not page.purged_through <= known <= page.version:
        raise Gone(
            "this checkpoint is older than the deletes the server keeps (or not from this "
            "server); discard the local copy and pull again from a null checkpoint",
            checkpoint=checkpoint,
        )
    rows = page.changes[:limit]
    has_more = len(page.changes) > limit
    if has_more:
        last = rows[-1]
        version = int(last["version"])
        since = known if known > version else None
        position = Position(version, last["record_id"], last["collection"], since)
    else:
        # Everything up to the organization's version is in this snapshot: the client
        # may skip straight to it, which also keeps its checkpoint inside the horizon.
        position = Position(page.version)
    return Pulled(
        changes=[row["change"] for row in rows], checkpoint=encode(position), has_more=has_more
    )
