"""GET and POST /api/v1/sync/watermelon: WatermelonDB's pullChanges and pushChanges."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from fieldsync.kit.errors import ValidationFailed
from fieldsync.kit.http.auth import CurrentCaller
from fieldsync.kit.http.deps import RuntimeDep
from fieldsync.sync.watermelon import pull, push
from fieldsync.sync.watermelon.schemas import (
    PullOut,
    PushedChanges,
    PushOut,
    parse_cursor,
    parse_migration,
    parse_schema_version,
)

router = APIRouter(prefix="/api/v1/sync", tags=["sync: WatermelonDB"])

CursorParam = Annotated[
    str | None,
    Query(
        max_length=32,
        description="the `timestamp` of the last pull, or `null` for a first sync",
    ),
]


@router.get("/watermelon", response_model=PullOut, response_model_exclude_none=True)
async def pull_changes(
    caller: CurrentCaller,
    runtime: RuntimeDep,
    last_pulled_at: CursorParam = None,
    schema_version: Annotated[str | None, Query(max_length=32)] = None,
    migration: Annotated[
        str | None, Query(description="WatermelonDB's migration sync info, as JSON")
    ] = None,
) -> Response:
    """`{changes, timestamp}` for `synchronize()`: everything in scope as `created` on a
    first sync, else what changed after `last_pulled_at` (`updated` and `deleted`).

    `experimentalStrategy: "replacement"` when the client missed deletes the server no
    longer keeps, or a migration asks for whole tables. `has_more: true` when the
    response stopped at the cap: synchronize again.
    """
    parse_schema_version(schema_version)
    body = await pull.pull(
        runtime.databases["sync"],
        caller,
        parse_cursor(last_pulled_at),
        parse_migration(migration),
    )
    return Response(body, media_type="application/json")


@router.post("/watermelon", response_model=PushOut)
async def push_changes(
    changes: PushedChanges,
    caller: CurrentCaller,
    runtime: RuntimeDep,
    last_pulled_at: CursorParam = None,
) -> Response:
    """Apply WatermelonDB's local changes; 409 (nothing applied) when any pushed record
    changed on the server after `last_pulled_at` — pull, then push again.

    Answers once pulls see the changes.
    """
    cursor = parse_cursor(last_pulled_at)
    if cursor is None:
        raise ValidationFailed(
            "last_pulled_at: push after a pull, with the timestamp it returned",
            errors=[{"loc": ["query", "last_pulled_at"], "msg": "required"}],
        )
    await push.push(runtime, caller, cursor, changes)
    return Response(b"{}", media_type="application/json")
