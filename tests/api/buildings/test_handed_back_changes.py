"""An owner hands the changes a push committed back with its answer, exactly as its
outbox holds them (the sync service writes them into its replica at once)."""

from __future__ import annotations

import uuid

from fieldsync.api.changes import change_log
from fieldsync.contracts.changes import Change, collect_changes, new_change
from fieldsync.contracts.collections import BUILDINGS as BUILDINGS_COLLECTION
from fieldsync.contracts.mutations import AppliedMutations, MutationStatus
from fieldsync.kit.messaging import Bus
from fieldsync.kit.runtime import Runtime
from tests.api.buildings.conftest import apply_request, outbox_changes, upsert
from tests.api.conftest import Register


async def test_the_answer_carries_what_the_outbox_holds_in_order(
    register: Register, bus: Bus, runtime: Runtime
) -> None:
    admin = await register()
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    request = apply_request(
        admin,
        [
            upsert(1, first, {"name": "First"}),
            upsert(2, second, {"name": "Second", "floors": 301}),  # rejected
            upsert(3, first, {"name": "First, renamed"}, base_version=1),
            upsert(4, first, {"name": "Lost"}, base_version=1),  # conflict
        ],
    )

    reply = await bus.request(BUILDINGS_COLLECTION.apply_subject, request, AppliedMutations)

    assert [result.status for result in reply.results] == [
        MutationStatus.APPLIED,
        MutationStatus.REJECTED,
        MutationStatus.APPLIED,
        MutationStatus.CONFLICT,
    ]
    assert [change.model_dump(mode="json") for change in reply.changes] == await outbox_changes(
        runtime, admin.claims["org"]
    )
    assert [(change.id, change.version) for change in reply.changes] == [
        (uuid.UUID(first), 1),
        (uuid.UUID(first), 2),
    ]
    # A replay applies nothing, so it hands nothing back.
    again = await bus.request(BUILDINGS_COLLECTION.apply_subject, request, AppliedMutations)
    assert again.results == reply.results
    assert again.changes == []


def building_change(name: str) -> Change:
    record_id = uuid.uuid4()
    return new_change(
        BUILDINGS_COLLECTION.name,
        record_id=record_id,
        organization_id=uuid.uuid4(),
        building_id=record_id,
        version=1,
        data={"name": name},
    )


async def test_changes_of_a_rolled_back_savepoint_are_not_handed_back(runtime: Runtime) -> None:
    kept_before, undone, kept_after = (building_change(name) for name in ("a", "b", "c"))
    async with runtime.databases["api"].sessions() as session:
        changes = change_log(session, runtime.ids["api"])
        with collect_changes() as collected:
            await changes.record_all([kept_before])
            savepoint = await session.begin_nested()
            await changes.record_all([undone])
            await savepoint.rollback()
            await changes.record_all([kept_after])
        assert await collected.kept(session) == [kept_before, kept_after]
        await session.rollback()  # nothing of this test is published


async def test_outside_a_collecting_block_nothing_is_noted(runtime: Runtime) -> None:
    async with runtime.databases["api"].sessions() as session:
        changes = change_log(session, runtime.ids["api"])
        with collect_changes() as collected:
            pass
        await changes.record_all([building_change("x")])
        assert collected.appended == []
        assert await collected.kept(session) == []
        await session.rollback()
