"""Pushed building mutations applied set-based: a few statements for a whole request.

`apply_in_order` offers a request's claimed mutations here first (`ApplySet`). This
takes those it can answer exactly as the per-mutation path would (`mutations.py`):
creates, compare-and-set updates and deletes of records no other mutation of the
request touches, with valid data. It writes them in one statement per kind on the
handler's transaction (`bulk_repository.py`) and appends their changes to the outbox
in one statement. A row a statement did not write — an id in use, another
organization's id, a stale version, a record already deleted or missing, an update
that changes nothing — is left to the per-mutation path, which answers it as it
always has, as is everything else (a technician's push, an id touched twice).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, cast

import asyncpg
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from fieldsync.api.buildings.bulk_repository import (
    building_data,
    delete_buildings,
    insert_buildings,
    update_buildings,
)
from fieldsync.api.buildings.schemas import BuildingCreate, BuildingUpdate
from fieldsync.api.changes import change_log
from fieldsync.contracts.changes import Change, ChangeOp, built_change
from fieldsync.contracts.collections import BUILDINGS
from fieldsync.contracts.identity import Caller, Role
from fieldsync.contracts.mutations import Mutation, MutationResult, applied, result_of_error
from fieldsync.kit.errors import Unavailable
from fieldsync.kit.ids import SnowflakeGenerator

# `Collection.writable` builds a set on each call: once here for every request.
WRITABLE = BUILDINGS.writable

# Rows a statement wrote, by public id.
Written = dict[uuid.UUID, asyncpg.Record]


async def driver_connection(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under the session, inside the session's transaction."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return cast(asyncpg.Connection, raw.driver_connection)


class BulkBuildingMutations:
    """Applies one caller's independent building mutations of a request together."""

    def __init__(self, session: AsyncSession, ids: SnowflakeGenerator, caller: Caller) -> None:
        self.session = session
        self.ids = ids
        self.caller = caller

    async def apply(self, mutations: list[Mutation]) -> dict[int, MutationResult]:
        """The results of the mutations applied here, by mutation id (see `ApplySet`)."""
        # A technician may not change buildings: the per-mutation path says `forbidden`.
        if not self.caller.has_role(Role.ADMIN, Role.MANAGER):
            return {}
        results: dict[int, MutationResult] = {}
        creates: list[tuple[Mutation, BuildingCreate]] = []
        updates: list[tuple[Mutation, int, dict[str, Any]]] = []
        deletes: list[Mutation] = []
        planned: list[Mutation] = []  # in request order
        for mutation in independent(mutations):
            if mutation.collection != BUILDINGS.name:
                continue
            if mutation.op is ChangeOp.DELETE:
                deletes.append(mutation)
                planned.append(mutation)
                continue
            data = mutation.data
            if data is None or not set(data) <= WRITABLE:
                continue  # rejected by the per-mutation path, with its own message
            # Validated as the per-mutation path does, before it looks at the record.
            try:
                if mutation.base_version is None:
                    creates.append(
                        (mutation, BuildingCreate.model_validate({**data, "id": mutation.id}))
                    )
                else:
                    change = BuildingUpdate.model_validate(
                        {**data, "version": mutation.base_version}
                    )
                    sent = change.model_dump(exclude_unset=True, exclude={"version"})
                    updates.append((mutation, mutation.base_version, sent))
            except ValidationError as exc:
                results[mutation.mutation_id] = result_of_error(mutation, exc)
                continue
            planned.append(mutation)
        if not (creates or updates or deletes):
            return results
        written = await self._write(creates, updates, deletes)
        if written is None:
            return {}
        inserted, updated, deleted = written
        changes: list[tuple[Change, bytes]] = []
        for mutation in planned:
            if mutation.op is ChangeOp.DELETE:
                row = deleted.get(mutation.id)
            elif mutation.base_version is None:
                row = inserted.get(mutation.id)
            else:
                row = updated.get(mutation.id)
            if row is None:
                continue  # not written: the per-mutation path answers it
            results[mutation.mutation_id] = applied(mutation.mutation_id, row["version"])
            changes.append(self._change(row, deleted=mutation.op is ChangeOp.DELETE))
        await change_log(self.session, self.ids).record_built(
            await driver_connection(self.session), changes
        )
        return results

    async def _write(
        self,
        creates: list[tuple[Mutation, BuildingCreate]],
        updates: list[tuple[Mutation, int, dict[str, Any]]],
        deletes: list[Mutation],
    ) -> tuple[Written, Written, Written] | None:
        """Write what the statements can; None when PostgreSQL refused one (undone)."""
        organization = self.caller.organization_id
        try:
            # A savepoint: a statement PostgreSQL refuses leaves every mutation to the
            # per-mutation path, which answers each as it always has.
            async with self.session.begin_nested():
                # Asked for inside the block: the session emits the SAVEPOINT when its
                # connection is first used there (the raw statements bypass the session).
                connection = await driver_connection(self.session)
                if not connection.is_in_transaction():  # never so after the ledger's lookup
                    return None

                async def run(write: Callable[..., Awaitable[Written]], rows: list[Any]) -> Written:
                    return await write(connection, organization, rows) if rows else {}

                inserted = await run(
                    insert_buildings,
                    [
                        (self.ids.next_id(), mutation.id, new.model_dump(exclude={"id"}))
                        for mutation, new in creates
                    ],
                )
                updated = await run(
                    update_buildings,
                    [(mutation.id, base, sent) for mutation, base, sent in updates],
                )
                deleted = await run(
                    delete_buildings, [(mutation.id, mutation.base_version) for mutation in deletes]
                )
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
            raise Unavailable("the api database cannot be reached") from exc
        except asyncpg.PostgresError:
            return None
        return inserted, updated, deleted

    def _change(self, row: asyncpg.Record, *, deleted: bool) -> tuple[Change, bytes]:
        """The change event (and its JSON) the per-mutation path records for this write."""
        return built_change(
            BUILDINGS.name,
            record_id=row["uuid"],
            organization_id=self.caller.organization_id,
            building_id=row["uuid"],
            version=row["version"],
            data=None if deleted else building_data(row),
            # What `new_change` would stamp: the time the change is recorded.
            occurred_at=datetime.now(UTC),
        )


def independent(mutations: list[Mutation]) -> list[Mutation]:
    """The mutations whose record no other mutation of the request touches."""
    touched = Counter((mutation.collection, mutation.id) for mutation in mutations)
    return [mutation for mutation in mutations if touched[(mutation.collection, mutation.id)] == 1]
