"""Pushed mutations, as the sync service sends them to the owning service over NATS.

The sync service has already checked the caller's scope, the collection and the field
names; the owner validates values, enforces its own rules and scope again, and applies
each mutation with compare-and-set on `base_version`:

- `upsert` with `base_version` None creates the record under the client's id; the id
  already in use is a `conflict` carrying the current record (or `rejected` when the
  caller may not see it, so nothing leaks).
- `upsert` with a `base_version` updates the given fields if the record is still at
  that version; otherwise `conflict` with the current record (None when deleted).
- `delete` soft-deletes when the record is at `base_version` (None: whatever version);
  deleting a deleted or missing record is `applied` (the client's wish holds).

`(caller.user_id, client_id, mutation_id)` names a mutation: an owner records each
result in the transaction that applies it and answers a replay with that result,
so a retried push never applies anything twice. One request's mutations are applied
in order, each in its own savepoint of one transaction; an owner may apply some of
them set-based first (`ApplySet`) when that gives the results in-order application
would.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from fieldsync.contracts.changes import Change, ChangeOp, collect_changes
from fieldsync.contracts.identity import Caller
from fieldsync.kit.db.ledger import MutationLedger
from fieldsync.kit.errors import Conflict, FieldsyncError, Forbidden, NotFound, ValidationFailed

MAX_MUTATIONS = 500
ClientId = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")]
MutationId = Annotated[int, Field(ge=1, le=2**63 - 1)]
BaseVersion = Annotated[int, Field(ge=1, le=2_147_483_647)]


class MutationStatus(StrEnum):
    """What became of one mutation."""

    APPLIED = "applied"
    CONFLICT = "conflict"
    REJECTED = "rejected"


class RejectionCode(StrEnum):
    """Why a mutation was rejected (it was not applied and never will be as sent)."""

    VALIDATION = "validation"  # a value is out of bounds or a field is unknown
    FORBIDDEN = "forbidden"  # the caller's role may not do this
    NOT_FOUND = "not_found"  # no such record in the caller's scope (or another org's)
    ILLEGAL_TRANSITION = "illegal_transition"  # the state machine refuses it
    INVALID_STATE = "invalid_state"  # e.g. a step of a closed workflow
    # All or nothing: the mutation was fine, but another of its batch was refused.
    NOT_APPLIED = "not_applied"


class Mutation(BaseModel):
    """One record change made by a client, offline or not."""

    model_config = ConfigDict(extra="forbid")

    mutation_id: MutationId
    collection: str
    id: uuid.UUID
    op: ChangeOp
    data: dict[str, Any] | None = None
    base_version: BaseVersion | None = None


class ApplyMutations(BaseModel):
    """Mutations of one client for one owner, applied in order."""

    model_config = ConfigDict(extra="forbid")

    caller: Caller
    # None: the caller works in the whole organization; else the buildings they may touch.
    building_scope: list[uuid.UUID] | None
    client_id: ClientId
    mutations: list[Mutation] = Field(min_length=1, max_length=MAX_MUTATIONS)
    # True: apply every mutation or none (WatermelonDB pushes). A refused or conflicting
    # mutation undoes the others, which answer `rejected` with code `not_applied`, and
    # the ledger keeps nothing, so the same ids may be sent again.
    all_or_nothing: bool = False

    @field_validator("mutations")
    @classmethod
    def _increasing_ids(cls, value: list[Mutation]) -> list[Mutation]:
        # Each id names one mutation: a repeated id would be applied as a new one.
        for earlier, later in itertools.pairwise(value):
            if later.mutation_id <= earlier.mutation_id:
                raise ValueError("mutation_id must increase within a request")
        return value


class MutationError(BaseModel):
    """Why a mutation was rejected; `field` names the offending field when there is one."""

    code: RejectionCode
    detail: str
    field: str | None = None


class MutationResult(BaseModel):
    """The outcome of one mutation.

    applied: `version` is the record's version after it (for a delete, after the delete).
    conflict: `record` is the server's current record (None when it is deleted), and
    `version` its version. rejected: `error` says why.
    """

    mutation_id: MutationId
    status: MutationStatus
    version: int | None = None
    record: dict[str, Any] | None = None
    error: MutationError | None = None


class AppliedMutations(BaseModel):
    """One result per mutation, in the order they were sent.

    `changes`: what the request's transaction committed, in the order it was made,
    exactly as the owner's outbox publishes it on `CHANGES`. The sync service writes
    them into its replica at once, so the push need not wait for the stream; the
    stream's copies then change nothing there. Empty for a replay (nothing applied)
    and when the changes were too large to send back.
    """

    results: list[MutationResult]
    changes: list[Change] = Field(default_factory=list)


# --- applying, on the owner's side ------------------------------------------------------

ApplyOne = Callable[[Mutation], Awaitable[MutationResult]]
# Attempts at applying first and recording after, before claiming first (each attempt
# undone means a concurrent delivery of the same mutations committed meanwhile).
OPTIMISTIC_ATTEMPTS = 3
# Applies what it can of a request's claimed mutations in a few statements; the results
# of those it applied (by mutation id). It may take only mutations whose outcome does
# not depend on the others of the request (none of them touches the same record), so
# applying them first gives what in-order application would; the rest go to ApplyOne.
ApplySet = Callable[[list[Mutation]], Awaitable[dict[int, MutationResult]]]


async def apply_in_order(
    session: AsyncSession,
    ledger: Table,
    request: ApplyMutations,
    apply_one: ApplyOne,
    apply_set: ApplySet | None = None,
) -> AppliedMutations:
    """Apply each mutation once, in order, each in a savepoint; results in request order.

    `apply_one` applies one mutation and returns its result; a `FieldsyncError` or a
    pydantic `ValidationError` it raises becomes that mutation's result (see
    `result_of_error`) and undoes only that mutation's writes. `apply_set`, when
    given, first applies the independent mutations it can set-based (see `ApplySet`).
    With `request.all_or_nothing`, one mutation not applied undoes them all. The
    answer carries the changes the transaction keeps (`AppliedMutations.changes`).
    """
    with collect_changes() as collected:
        outcome = await _apply(session, ledger, request, apply_one, apply_set)
    outcome.changes = await collected.kept(session)
    return outcome


async def _apply(
    session: AsyncSession,
    ledger: Table,
    request: ApplyMutations,
    apply_one: ApplyOne,
    apply_set: ApplySet | None,
) -> AppliedMutations:
    if not request.all_or_nothing:
        return await _apply_each(session, ledger, request, apply_one, apply_set)
    batch = await session.begin_nested()
    outcome = await _apply_each(session, ledger, request, apply_one, apply_set)
    if all(result.status is MutationStatus.APPLIED for result in outcome.results):
        await batch.commit()
        return outcome
    await batch.rollback()
    return AppliedMutations(
        results=[
            not_applied(result.mutation_id) if result.status is MutationStatus.APPLIED else result
            for result in outcome.results
        ]
    )


def not_applied(mutation_id: int) -> MutationResult:
    """An all-or-nothing batch's answer for a mutation undone with the rest."""
    return rejected(
        mutation_id,
        RejectionCode.NOT_APPLIED,
        "not applied: another mutation of this all-or-nothing batch was refused",
    )


async def _apply_each(
    session: AsyncSession,
    ledger: Table,
    request: ApplyMutations,
    apply_one: ApplyOne,
    apply_set: ApplySet | None,
) -> AppliedMutations:
    """Apply the request's new mutations; the stored results of the others.

    Deliveries of one client's requests take turns (`MutationLedger.lock`). Then the
    mutations not recorded yet are applied in a savepoint and their results recorded
    with one insert at the end. Should that insert find one recorded meanwhile (by a
    process that does not take the lock, such as an older version mid-deploy), the
    attempt is undone and made again with what was recorded. Past `OPTIMISTIC_ATTEMPTS`, mutations are claimed
    before anything is applied, and their results stored after.
    """
    claims = MutationLedger(
        session, ledger, user_id=request.caller.user_id, client_id=request.client_id
    )
    ids = [mutation.mutation_id for mutation in request.mutations]
    await claims.lock()
    for _ in range(OPTIMISTIC_ATTEMPTS):
        stored = await claims.results(ids)
        attempt = await session.begin_nested()
        outcome, settled = await _apply_claimed(
            session, request, set(ids) - set(stored), stored, apply_one, apply_set
        )
        if await claims.record(settled):
            await attempt.commit()
            return outcome
        await attempt.rollback()
    claimed = await claims.claim(ids)
    stored = await claims.results([i for i in ids if i not in claimed])
    outcome, settled = await _apply_claimed(session, request, claimed, stored, apply_one, apply_set)
    await claims.settle(settled)
    return outcome


async def _apply_claimed(
    session: AsyncSession,
    request: ApplyMutations,
    claimed: set[int],
    stored: dict[int, dict[str, Any]],
    apply_one: ApplyOne,
    apply_set: ApplySet | None,
) -> tuple[AppliedMutations, dict[int, dict[str, Any]]]:
    """Apply the `claimed` mutations; the answer, and the results to store for them."""
    applied_together: dict[int, MutationResult] = {}
    if apply_set is not None and claimed:
        applied_together = await apply_set(
            [mutation for mutation in request.mutations if mutation.mutation_id in claimed]
        )
    results: list[MutationResult] = []
    settled: dict[int, dict[str, Any]] = {}
    for mutation in request.mutations:
        if mutation.mutation_id not in claimed:
            results.append(MutationResult.model_validate(stored[mutation.mutation_id]))
            continue
        together = applied_together.get(mutation.mutation_id)
        if together is not None:
            result = together
        else:
            try:
                async with session.begin_nested():
                    result = await apply_one(mutation)
            except (FieldsyncError, ValidationError) as exc:
                result = result_of_error(mutation, exc)
        settled[mutation.mutation_id] = result.model_dump(mode="json")
        results.append(result)
    return AppliedMutations(results=results), settled


def result_of_error(mutation: Mutation, error: FieldsyncError | ValidationError) -> MutationResult:
    """What an owner's error means for the client that pushed the mutation."""
    mutation_id = mutation.mutation_id
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        return rejected(mutation_id, RejectionCode.VALIDATION, first["msg"], field=field)
    if isinstance(error, Conflict):
        if "current" in error.extensions:
            return MutationResult(
                mutation_id=mutation_id,
                status=MutationStatus.CONFLICT,
                version=error.extensions.get("current_version"),
                record=error.extensions["current"],
            )
        if "allowed" in error.extensions:
            return rejected(mutation_id, RejectionCode.ILLEGAL_TRANSITION, error.detail)
        return rejected(mutation_id, RejectionCode.INVALID_STATE, error.detail)
    code = {
        ValidationFailed: RejectionCode.VALIDATION,
        Forbidden: RejectionCode.FORBIDDEN,
        NotFound: RejectionCode.NOT_FOUND,
    }.get(type(error))
    if code is None:
        raise error  # unavailable databases and the like: the whole request fails
    field = None
    errors = error.extensions.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        location = errors[0].get("loc")
        if isinstance(location, list) and location:
            field = str(location[-1])
    return rejected(mutation_id, code, error.detail, field=field)


def rejected(
    mutation_id: int, code: RejectionCode, detail: str, *, field: str | None = None
) -> MutationResult:
    """A rejection result."""
    return MutationResult(
        mutation_id=mutation_id,
        status=MutationStatus.REJECTED,
        error=MutationError(code=code, detail=detail, field=field),
    )


def applied(mutation_id: int, version: int | None) -> MutationResult:
    """An applied result: the record's version after the mutation."""
    # The owner's own values (a checked mutation id, a version from its row): built
    # without validation, as a set-based write makes hundreds of these per request.
    return MutationResult.model_construct(
        mutation_id=mutation_id, status=MutationStatus.APPLIED, version=version
    )
