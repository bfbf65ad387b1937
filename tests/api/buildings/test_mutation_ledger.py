"""Pushed building mutations apply at most once: replays and races read the first result."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from fieldsync.contracts.mutations import AppliedMutations, MutationStatus
from fieldsync.kit.db.ledger import MutationLedger
from fieldsync.kit.errors import Unavailable
from fieldsync.kit.messaging import Bus
from fieldsync.kit.runtime import Runtime
from tests.api.buildings.conftest import (
    OpenFeed,
    Push,
    apply_request,
    create_building,
    delete,
    get_building,
    outbox_changes,
    outbox_rows,
    upsert,
    wait_until_published,
)
from tests.api.conftest import CreateUser, Register

SUBJECT = "api.buildings.apply"


async def test_a_replayed_push_answers_the_same_and_applies_nothing(
    client: httpx.AsyncClient,
    register: Register,
    push: Push,
    runtime: Runtime,
    change_feed: OpenFeed,
) -> None:
    admin = await register()
    organization = admin.claims["org"]
    feed = await change_feed(organization)
    theirs = await create_building(client, await register(), name="Theirs")
    new_id = str(uuid.uuid4())
    batch = (
        upsert(1, new_id, {"name": "Shed"}),
        upsert(2, new_id, {"floors": 1}, base_version=1),
        upsert(3, new_id, {"floors": 9}, base_version=1),  # stale: a conflict
        upsert(4, new_id, {"floors": 301}, base_version=2),  # out of bounds: rejected
        upsert(5, theirs["id"], {"name": "Mine"}, base_version=1),  # not found
    )

    first = await push(admin, *batch)
    rows = await wait_until_published(runtime, organization, count=2)
    await feed.wait_for_count("buildings", 2)
    second = await push(admin, *batch)

    assert second == first
    assert [result.status for result in first] == [
        MutationStatus.APPLIED,
        MutationStatus.APPLIED,
        MutationStatus.CONFLICT,
        MutationStatus.REJECTED,
        MutationStatus.REJECTED,
    ]
    assert (await get_building(client, admin, new_id))["version"] == 2
    assert await outbox_rows(runtime, organization) == rows
    # Every row is published and the feed has read them: nothing else is in the stream.
    assert len(await feed.drain()) == 2


async def test_a_replay_with_more_mutations_applies_only_the_new_ones(
    client: httpx.AsyncClient, register: Register, push: Push, runtime: Runtime
) -> None:
    admin = await register()
    building_id = str(uuid.uuid4())
    created = upsert(1, building_id, {"name": "Shed"})
    renamed = upsert(2, building_id, {"name": "Barn"}, base_version=1)
    (first,) = await push(admin, created)

    again, then = await push(admin, created, renamed)

    assert again == first
    assert (then.status, then.version) == (MutationStatus.APPLIED, 2)
    assert (await get_building(client, admin, building_id))["name"] == "Barn"
    assert len(await outbox_changes(runtime, admin.claims["org"])) == 2


async def test_a_mutation_is_named_by_user_client_and_id(
    client: httpx.AsyncClient,
    register: Register,
    create_user: CreateUser,
    push: Push,
) -> None:
    admin = await register()
    manager = await create_user(admin, "manager")
    building = await create_building(client, admin, name="Shared")

    on_phone = await push(admin, delete(7, uuid.uuid4()), client_id="phone")
    on_tablet = await push(
        admin, upsert(7, building["id"], {"floors": 1}, base_version=1), client_id="tablet"
    )
    by_manager = await push(
        manager, upsert(7, building["id"], {"floors": 2}, base_version=2), client_id="phone"
    )

    assert [on_phone[0].version, on_tablet[0].version, by_manager[0].version] == [None, 2, 3]
    assert (await get_building(client, admin, building["id"]))["floors"] == 2


@pytest.mark.parametrize("locked", [True, False], ids=["taking-turns", "without-the-lock"])
async def test_concurrent_identical_pushes_apply_once(
    client: httpx.AsyncClient,
    register: Register,
    bus: Bus,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
    locked: bool,
) -> None:
    if not locked:
        # As an owner that does not take the client's lock (an older version during a
        # deploy): both apply at once, and the later record finds the first one's.
        async def no_lock(self: MutationLedger) -> None:
            return None

        monkeypatch.setattr(MutationLedger, "lock", no_lock)
    admin = await register()
    building_id = str(uuid.uuid4())
    mutations = [upsert(1, building_id, {"name": "Floor 0"})] + [
        upsert(number + 1, building_id, {"name": f"Floor {number}"}, base_version=number)
        for number in range(1, 20)
    ]
    request = apply_request(admin, mutations)

    replies = await asyncio.gather(
        *(bus.request(SUBJECT, request, AppliedMutations) for _ in range(2))
    )

    assert replies[0].results == replies[1].results
    # Only the request that applied them hands their changes back.
    assert sorted(len(reply.changes) for reply in replies) == [0, 20]
    assert [result.version for result in replies[0].results] == list(range(1, 21))
    building = await get_building(client, admin, building_id)
    assert (building["name"], building["version"]) == ("Floor 19", 20)
    assert len(await outbox_changes(runtime, admin.claims["org"])) == 20


async def test_crossing_creates_never_apply_twice(
    client: httpx.AsyncClient, register: Register, bus: Bus, runtime: Runtime
) -> None:
    """Two clients create the same two ids in opposite orders, at once.

    Whichever way their transactions interleave (one may have to wait out the
    other's deadlock and be told to retry), each building is created exactly once.
    """
    admin = await register()
    left, right = str(uuid.uuid4()), str(uuid.uuid4())
    one = apply_request(
        admin,
        [upsert(1, left, {"name": "Left"}), upsert(2, right, {"name": "Right"})],
        client_id="one",
    )
    other = apply_request(
        admin,
        [upsert(1, right, {"name": "Right"}), upsert(2, left, {"name": "Left"})],
        client_id="other",
    )

    replies = await asyncio.gather(
        bus.request(SUBJECT, one, AppliedMutations),
        bus.request(SUBJECT, other, AppliedMutations),
        return_exceptions=True,
    )

    answered = [reply for reply in replies if isinstance(reply, AppliedMutations)]
    assert all(isinstance(reply, Unavailable) for reply in replies if reply not in answered)
    assert answered, replies
    statuses = [result.status for reply in answered for result in reply.results]
    assert statuses.count(MutationStatus.APPLIED) == 2
    assert set(statuses) <= {MutationStatus.APPLIED, MutationStatus.CONFLICT}
    for building_id in (left, right):
        assert (await get_building(client, admin, building_id))["version"] == 1
    assert len(await outbox_changes(runtime, admin.claims["org"])) == 2


async def test_two_clients_creating_one_id_at_once_create_it_once(
    client: httpx.AsyncClient, register: Register, bus: Bus, runtime: Runtime
) -> None:
    admin = await register()
    shared = str(uuid.uuid4())
    # The phone's longer batch keeps its new row uncommitted while the tablet's create
    # of the same id arrives: that one waits on the row, then answers with it.
    phone = apply_request(
        admin,
        [upsert(1, shared, {"name": "Phone"})]
        + [upsert(number, uuid.uuid4(), {"name": f"Other {number}"}) for number in range(2, 40)],
        client_id="phone",
    )
    tablet = apply_request(admin, [upsert(1, shared, {"name": "Tablet"})], client_id="tablet")

    on_phone, on_tablet = await asyncio.gather(
        bus.request(SUBJECT, phone, AppliedMutations),
        bus.request(SUBJECT, tablet, AppliedMutations),
    )

    first = {on_phone.results[0].status, on_tablet.results[0].status}
    assert first == {MutationStatus.APPLIED, MutationStatus.CONFLICT}
    (conflict,) = (
        reply.results[0]
        for reply in (on_phone, on_tablet)
        if reply.results[0].status == MutationStatus.CONFLICT
    )
    stored = await get_building(client, admin, shared)
    assert conflict.record == {key: value for key, value in stored.items() if key != "created_at"}
    assert stored["version"] == 1
    assert len(await outbox_changes(runtime, admin.claims["org"])) == 39


async def test_an_all_or_nothing_batch_with_one_refusal_applies_and_records_nothing(
    client: httpx.AsyncClient, register: Register, bus: Bus, runtime: Runtime
) -> None:
    admin = await register()
    organization = admin.claims["org"]
    shed, barn = str(uuid.uuid4()), str(uuid.uuid4())
    batch = [
        upsert(1, shed, {"name": "Shed"}),
        upsert(2, barn, {"name": "Barn", "floors": 301}),  # out of bounds: rejected
        upsert(3, shed, {"floors": 2}, base_version=1),
    ]
    request = apply_request(admin, batch).model_copy(update={"all_or_nothing": True})

    refused = await bus.request(SUBJECT, request, AppliedMutations)

    assert [r.status for r in refused.results] == [MutationStatus.REJECTED] * 3
    assert [r.error.code for r in refused.results if r.error is not None] == [
        "not_applied",
        "validation",
        "not_applied",
    ]
    assert (await client.get(f"/api/v1/buildings/{shed}", headers=admin.auth)).status_code == 404
    assert await outbox_rows(runtime, organization) == []
    # The ledger kept nothing: the same ids, fixed, are applied as new mutations.
    fixed = [batch[0], upsert(2, barn, {"name": "Barn", "floors": 3}), batch[2]]
    accepted = await bus.request(
        SUBJECT,
        apply_request(admin, fixed).model_copy(update={"all_or_nothing": True}),
        AppliedMutations,
    )
    assert [r.status for r in accepted.results] == [MutationStatus.APPLIED] * 3
    assert (await get_building(client, admin, shed))["floors"] == 2
