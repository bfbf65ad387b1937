"""POST /api/v1/sync/push."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Response

from fieldsync.kit.http.auth import CurrentCaller
from fieldsync.kit.http.deps import RuntimeDep
from fieldsync.sync.push.schemas import PushIn, PushOut
from fieldsync.sync.push.service import push

router = APIRouter(prefix="/api/v1/sync", tags=["sync"])


@router.post("/push", response_model=PushOut)
async def push_mutations(body: PushIn, caller: CurrentCaller, runtime: RuntimeDep) -> Response:
    """Apply a client's mutations, each at most once, and answer one result per mutation.

    Answers after the replica holds the applied changes, so the next pull sees them.
    A retried push (same `client_id` and `mutation_id`s) returns the same results.
    """
    pushed = await push(runtime, caller, body)
    body_out = {"results": [result.to_wire() for result in pushed.results]}
    return Response(orjson.dumps(body_out), media_type="application/json")
