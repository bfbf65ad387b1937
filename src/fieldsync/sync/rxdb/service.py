"""RxDB pull: a page of one collection's documents in the caller's scope."""

from __future__ import annotations

import orjson

from fieldsync.contracts.collections import Collection
from fieldsync.contracts.identity import Caller, Role
from fieldsync.kit.db.engine import Database
from fieldsync.kit.errors import Gone
from fieldsync.sync.rxdb.repository import DocumentPage, read_documents
from fieldsync.sync.rxdb.schemas import Checkpoint


async def read_page(
    database: Database, caller: Caller, collection: Collection, after: Checkpoint, limit: int
) -> tuple[list[str], Checkpoint, DocumentPage]:
    """Documents (JSON texts) after `after`, the checkpoint after them, and the raw page.

    410 Gone when the checkpoint is older than the deletes the server keeps, or newer
    than anything it issued: the client must start over from an empty checkpoint. A
    replication from scratch carries `since` in its checkpoints until it has caught
    up, so a purge does not stop it halfway.
    """
    async with database.raw_connection() as connection:
        page = await read_documents(
            connection,
            organization_id=caller.organization_id,
            technician_id=caller.user_id if caller.role == Role.TECHNICIAN else None,
            collection=collection.name,
            after=after.after(),
            limit=limit,
        )
    # Everything deleted up to `known` has reached the client (or it never held it).
    known = page.version if after.lwt == 0 else max(after.lwt, after.since or 0)
    if not page.purged_through <= known <= page.version:
        raise Gone(
            "this checkpoint is older than the deletes the server keeps (or not from this "
            "server); remove the local collection and replicate again from scratch",
        )
    if not page.rows:
        return [], after, page
    lwt = int(page.rows[-1]["lwt"])
    since = known if known > lwt else None
    checkpoint = Checkpoint(id=str(page.rows[-1]["id"]), lwt=lwt, since=since)
    return [row["document"] for row in page.rows], checkpoint, page


def documents_json(documents: list[str], checkpoint: Checkpoint) -> bytes:
    """`{"documents": [...], "checkpoint": {...}}` from documents PostgreSQL rendered."""
    head = b'{"documents":[' + ",".join(documents).encode() + b'],"checkpoint":'
    return head + orjson.dumps(checkpoint.wire()) + b"}"


async def pull(
    database: Database, caller: Caller, collection: Collection, after: Checkpoint, limit: int
) -> bytes:
    """The reply body of a pull: up to `limit` documents after `after`, sorted by (lwt, id).

    An empty page echoes the checkpoint it was asked for.
    """
    documents, checkpoint, _ = await read_page(database, caller, collection, after, limit)
    return documents_json(documents, checkpoint)
