"""Push: check each mutation, send them to their owners in order, answer once the
replica holds what was applied (so the client's next pull sees its own writes).

Each owner answers with the changes it committed, which are written into the replica
at once (`write_through.py`); only what that did not cover is waited for on the stream.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from fieldsync.contracts.collections import COLLECTIONS
from fieldsync.contracts.identity import Caller
from fieldsync.contracts.mutations import (
    AppliedMutations,
    ApplyMutations,
    Mutation,
    MutationResult,
    MutationStatus,
    not_applied,
)
from fieldsync.kit.errors import Unavailable
from fieldsync.kit.logging import get_logger
from fieldsync.kit.runtime import Runtime
from fieldsync.sync.ingest.through import written_through
from fieldsync.sync.push.checks import MutationChecks, referenced_keys
from fieldsync.sync.push.replica import RecordKey, lookup, not_arrived
from fieldsync.sync.push.schemas import PushIn, PushOut, PushResult
from fieldsync.sync.push.write_through import write_through
from fieldsync.sync.realtime.hub import hub_of, wait_for_event
from fieldsync.sync.scope import building_scope

log = get_logger(__name__)

SERVICE_NAME = "sync"
# An owner applies up to 500 mutations in one transaction: allow it more than a query.
OWNER_TIMEOUT_SECONDS = 30.0
# Between pokes, look at the replica again this often (a poke lost with a NATS
# reconnect must not stall a push until its deadline).
RECHECK_SECONDS = 0.25


@dataclass
class Run:
    """Consecutive mutations for one owner: one request, applied in order."""

    subject: str
    positions: list[int]
    mutations: list[Mutation]


async def push(
    runtime: Runtime, caller: Caller, body: PushIn, *, all_or_nothing: bool = False
) -> PushOut:
    """Apply a client's mutations at most once each; one result per mutation.

    `all_or_nothing` (WatermelonDB): each owner applies its share whole or not at all,
    and after a share that was refused nothing more is sent. Shares that owners before
    it committed stay: owners do not share a transaction.
    """
    database = runtime.databases[SERVICE_NAME]
    scope = await building_scope(database, caller)
    checks = MutationChecks(
        caller=caller,
        scope=scope,
        known=await lookup(database, referenced_keys(body.mutations), with_data=False),
    )
    results: list[MutationResult | None] = [None] * len(body.mutations)
    runs: list[Run] = []
    for position, pushed in enumerate(body.mutations):
        checked = checks.check(pushed)
        if isinstance(checked, MutationResult):
            results[position] = checked
            continue
        subject = COLLECTIONS[pushed.collection].apply_subject
        if not runs or runs[-1].subject != subject:
            runs.append(Run(subject=subject, positions=[], mutations=[]))
        runs[-1].positions.append(position)
        runs[-1].mutations.append(checked)

    written: dict[RecordKey, int] = {}
    refused = all_or_nothing and any(result is not None for result in results)
    through = written_through(runtime)
    for run in runs:
        if refused:
            for position, mutation in zip(run.positions, run.mutations, strict=True):
                results[position] = not_applied(mutation.mutation_id)
            continue
        # Marked until written through: the ingester waits for these rather than write
        # the copies the owner's relay publishes meanwhile.
        with through.pushing((mutation.collection, mutation.id) for mutation in run.mutations):
            reply = await runtime.bus.request(
                run.subject,
                ApplyMutations(
                    caller=caller,
                    building_scope=None if scope is None else sorted(scope),
                    client_id=body.client_id,
                    mutations=run.mutations,
                    all_or_nothing=all_or_nothing,
                ),
                AppliedMutations,
                timeout=OWNER_TIMEOUT_SECONDS,
            )
            refused = all_or_nothing and any(
                result.status is not MutationStatus.APPLIED for result in reply.results
            )
            for position, mutation, result in zip(
                run.positions, run.mutations, reply.results, strict=True
            ):
                results[position] = result
                if result.version is not None and result.status is not MutationStatus.REJECTED:
                    key = (mutation.collection, mutation.id)
                    written[key] = max(written.get(key, 0), result.version)
            for key, version in (await write_through(runtime, reply.changes)).items():
                if written.get(key, version + 1) <= version:
                    del written[key]  # in the replica now

    await wait_until_replicated(runtime, caller, written)
    return PushOut(results=await _as_pushed(runtime, body, results))


async def wait_until_replicated(
    runtime: Runtime, caller: Caller, versions: dict[RecordKey, int]
) -> None:
    """Return once the replica holds every record at its version; 503 past the deadline.

    The 503 is safe to act on: the mutations are applied, and a retried push returns
    the same results without applying anything twice.
    """
    database = runtime.databases[SERVICE_NAME]
    hub = hub_of(runtime)
    deadline = time.monotonic() + runtime.settings.sync_push_wait_seconds
    while True:
        poked = hub.next_poke(caller.organization_id)
        # Only what is still missing is looked at again: the organization's other
        # changes poke often while a large push arrives in several ingested batches.
        versions = await not_arrived(database, versions)
        if not versions:
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            known = await lookup(database, list(versions)[:20])
            log.warning(
                "pushed changes did not reach the replica in time",
                waiting_for=[
                    f"{c}/{i}@{v} (replica: "
                    f"{known[(c, i)].owner_version if (c, i) in known else 'missing'})"
                    for (c, i), v in list(versions.items())[:20]
                ],
            )
            raise Unavailable(
                "the mutations were applied but are not yet visible to pulls; "
                "retry the same push (nothing is applied twice)"
            )
        await wait_for_event(poked, min(RECHECK_SECONDS, remaining))


async def _as_pushed(
    runtime: Runtime, body: PushIn, results: list[MutationResult | None]
) -> list[PushResult]:
    """Results on the wire: a conflict carries the record exactly as a pull would."""
    conflicts = [
        (pushed.collection, pushed.id)
        for pushed, result in zip(body.mutations, results, strict=True)
        if result is not None and result.status is MutationStatus.CONFLICT
    ]
    replica = await lookup(runtime.databases[SERVICE_NAME], conflicts)
    pushed_results: list[PushResult] = []
    for pushed, result in zip(body.mutations, results, strict=True):
        assert result is not None  # every position was filled above
        record = result.record
        version: int | None
        if result.status is MutationStatus.CONFLICT:
            known = replica.get((pushed.collection, pushed.id))
            if known is not None and known.owner_version >= (result.version or 0):
                record, version = known.data, known.owner_version
            else:
                collection = COLLECTIONS[pushed.collection]
                record = None if record is None else collection.public(record)
                version = result.version
            pushed_results.append(
                PushResult.model_construct(
                    mutation_id=result.mutation_id,
                    status=result.status,
                    version=version,
                    record=record,
                )
            )
            continue
        # Built from fields the owner's answer validated: not validated again (500 times).
        pushed_results.append(
            PushResult.model_construct(
                mutation_id=result.mutation_id,
                status=result.status,
                version=result.version,
                error=result.error,
            )
        )
    return pushed_results
