"""The RxDB wire shapes: checkpoints, push rows, and the schema versions served."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from fieldsync.contracts.collections import COLLECTIONS, Collection
from fieldsync.kit.errors import FieldsyncError, NotFound

# The RxDB schema `version` of each collection the server serves. A client on an older
# schema gets 426 and migrates its local schema; the fields are those of
# `fieldsync.contracts.collections` (plus RxDB's own `_deleted`).
SCHEMA_VERSIONS: dict[str, int] = dict.fromkeys(COLLECTIONS, 0)

DEFAULT_LIMIT = 100
# A larger `limit`/`batchSize` is served as this many: clients page on.
MAX_LIMIT = 1000
# One push: RxDB sends its `push.batchSize` rows at once (the body cap applies too).
MAX_PUSH_ROWS = 2000
MAX_LWT = 2**63 - 1


class UpgradeRequired(FieldsyncError):
    """The client's schema version is no longer served: it must migrate first."""

    code: ClassVar[str] = "upgrade-required"
    status: ClassVar[int] = 426
    title: ClassVar[str] = "Upgrade required"


def served_collection(name: str, schema_version: int) -> Collection:
    """The collection of a request path: 404 for an unknown one, 426 for an old schema."""
    collection = COLLECTIONS.get(name)
    if collection is None:
        raise NotFound(f"no collection {name!r}; known: {', '.join(sorted(COLLECTIONS))}")
    served = SCHEMA_VERSIONS[name]
    if schema_version < served:
        raise UpgradeRequired(
            f"schema version {schema_version} of {name} is no longer served; "
            f"migrate the client to version {served}",
            served_version=served,
        )
    if schema_version > served:
        raise NotFound(f"schema version {schema_version} of {name} is not served (yet)")
    return collection


class Checkpoint(BaseModel):
    """Where a client is in a collection's feed: after (lwt, id).

    `since`, only during a replication from scratch: the replica version it started
    at. Such a client holds nothing deleted before it, so tombstones purged up to it
    are no loss, although its keyset position (`lwt`) is still older.
    """

    id: str
    lwt: int
    since: int | None = None

    def wire(self) -> dict[str, object]:
        """The checkpoint as clients store it (`since` only while it matters)."""
        return self.model_dump(exclude_none=True)

    def after(self) -> tuple[int, uuid.UUID]:
        """The keyset position; an empty id sorts before every record of its lwt."""
        return self.lwt, uuid.UUID(self.id) if self.id else uuid.UUID(int=0)


Document = dict[str, Any]


class PushRow(BaseModel):
    """One row of an RxDB push: the new state, and the master state it was made on."""

    model_config = ConfigDict(extra="forbid")

    newDocumentState: Document  # noqa: N815 - RxDB's wire name
    assumedMasterState: Document | None = None  # noqa: N815 - RxDB's wire name


PushRows = Annotated[list[PushRow], Field(max_length=MAX_PUSH_ROWS)]
