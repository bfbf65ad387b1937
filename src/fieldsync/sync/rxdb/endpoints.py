"""GET …/pull, POST …/push and GET …/pullStream under /api/v1/sync/rxdb/{collection}/{schema_version}.

The handlers a `replicateRxCollection` client calls (the rxdb-server wire format).
"""

from __future__ import annotations

import uuid
from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request, Response

from fieldsync.kit.errors import ValidationFailed
from fieldsync.kit.http.auth import CurrentCaller
from fieldsync.kit.http.deps import RuntimeDep, runtime_of
from fieldsync.sync.realtime.auth import realtime_caller
from fieldsync.sync.realtime.hub import hub_of
from fieldsync.sync.rxdb.schemas import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    MAX_LWT,
    Checkpoint,
    PushRows,
    served_collection,
)
from fieldsync.sync.rxdb.service import pull
from fieldsync.sync.rxdb.stream import DocumentStream
from fieldsync.sync.rxdb.writes import write_rows

router = APIRouter(prefix="/api/v1/sync/rxdb/{collection}/{schema_version}", tags=["sync: rxdb"])

Lwt = Annotated[int | None, Query(ge=0, le=MAX_LWT)]
Limit = Annotated[int | None, Query(ge=1)]


def _checkpoint(
    lwt: int | None, updated_at: int | None, record_id: str, since: int | None
) -> Checkpoint:
    if record_id:
        try:
            record_id = str(uuid.UUID(record_id))
        except ValueError:
            raise ValidationFailed(
                "id must be the id of a checkpoint this server returned (a UUID) or empty",
                errors=[{"loc": ["query", "id"], "msg": "not a UUID"}],
            ) from None
    return Checkpoint(id=record_id, lwt=lwt if lwt is not None else updated_at or 0, since=since)


@router.get("/pull")
async def pull_documents(
    collection: str,
    schema_version: int,
    caller: CurrentCaller,
    runtime: RuntimeDep,
    lwt: Lwt = None,
    updated_at: Annotated[int | None, Query(alias="updatedAt", ge=0, le=MAX_LWT)] = None,
    id: Annotated[str, Query(max_length=64)] = "",
    limit: Limit = None,
    batch_size: Annotated[int | None, Query(alias="batchSize", ge=1)] = None,
    since: Lwt = None,
) -> Response:
    """Documents of `collection` in the caller's scope after the checkpoint (lwt, id).

    `{documents: [{...fields, version, _deleted}], checkpoint: {id, lwt}}`, sorted by
    (lwt, id); an empty page echoes the checkpoint. `limit` (or `batchSize`) defaults
    to 100; more than 1000 is served as 1000. Send the checkpoint's `since` back when
    it has one (a replication from scratch). 410 Gone: start over from scratch.
    """
    served = served_collection(collection, schema_version)
    after = _checkpoint(lwt, updated_at, id, since)
    size = min(limit or batch_size or DEFAULT_LIMIT, MAX_LIMIT)
    body = await pull(runtime.databases["sync"], caller, served, after, size)
    return Response(body, media_type="application/json")


@router.post("/push")
async def push_documents(
    collection: str,
    schema_version: int,
    rows: PushRows,
    caller: CurrentCaller,
    runtime: RuntimeDep,
) -> Response:
    """Write `[{newDocumentState, assumedMasterState?}]`; the server's documents that conflict.

    `[]` when every row was written. A row is written when its `assumedMasterState`
    has the server's current `version` (no assumed state: only if the document is new).
    403 or 422 when the owner refuses a row (the problem lists them; the rest were
    written). Up to 2,000 rows, within the request body cap.
    """
    served = served_collection(collection, schema_version)
    conflicts = await write_rows(runtime, caller, served, rows)
    return Response(orjson.dumps(conflicts), media_type="application/json")


@router.get(
    "/pullStream",
    response_class=DocumentStream,
    status_code=200,
    responses={200: {"content": {"text/event-stream": {}}, "description": "document events"}},
)
async def pull_stream(collection: str, schema_version: int, request: Request) -> DocumentStream:
    """Server-Sent Events for RxDB's `pull.stream$`: documents as they change, or "RESYNC".

    The token may also come as `?access_token=` (EventSource cannot set headers).
    """
    runtime = runtime_of(request)
    served = served_collection(collection, schema_version)
    caller = realtime_caller(runtime, request)
    hub_of(runtime)  # 503 before the hub is up, rather than a stream that never sends
    return DocumentStream(runtime, caller, served)
