"""POST /api/v1/sync/pull."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from fieldsync.kit.http.auth import CurrentCaller
from fieldsync.kit.http.deps import RuntimeDep
from fieldsync.sync.pull.checkpoint import MAX_CHECKPOINT_LENGTH
from fieldsync.sync.pull.service import DEFAULT_LIMIT, MAX_LIMIT, pull

router = APIRouter(prefix="/api/v1/sync", tags=["sync"])


class PullIn(BaseModel):
    """Where the client is, and how many changes it takes at once."""

    model_config = ConfigDict(extra="forbid")

    checkpoint: str | None = Field(default=None, max_length=MAX_CHECKPOINT_LENGTH)
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)


class ChangeOut(BaseModel):
    """One change: the record's wire fields (with its `version`), or a delete."""

    collection: str
    id: str
    op: str = Field(description='"upsert" or "delete"')
    data: dict[str, object] | None


class PullOut(BaseModel):
    """A page of changes; pull again from `checkpoint` while `has_more`."""

    changes: list[ChangeOut]
    checkpoint: str
    has_more: bool


@router.post("/pull", response_model=PullOut)
async def pull_changes(body: PullIn, caller: CurrentCaller, runtime: RuntimeDep) -> Response:
    """Changes in the caller's scope after `checkpoint`, ordered by version then id.

    410 Gone when the checkpoint is older than the tombstone horizon: start over
    from `checkpoint: null`.
    """
    page = await pull(runtime.databases["sync"], caller, body.checkpoint, body.limit)
    return Response(page.to_json(), media_type="application/json")
