"""Independent building creates are inserted together; the results are the in-order ones.

Each test runs one scenario twice, in two organizations set up alike: once through
the handler (`api.buildings.apply`, which inserts independent creates set-based) and
once through `apply_in_order` with the per-mutation path only. Results, stored
buildings and change events must be the same, up to ids and times.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from fieldsync.api.buildings import bulk
from fieldsync.api.buildings.mutations import BuildingMutations
from fieldsync.api.buildings.service import BuildingService
from fieldsync.api.models import applied_mutations
from fieldsync.api.transaction import transaction
from fieldsync.contracts.changes import ChangeOp
from fieldsync.contracts.mutations import (
    AppliedMutations,
    Mutation,
    MutationResult,
    MutationStatus,
    apply_in_order,
)
from fieldsync.kit.messaging import Bus
from fieldsync.kit.runtime import Runtime
from tests.api.buildings.conftest import (
    OpenFeed,
    apply_request,
    building_url,
    create_building,
    delete,
    get_building,
    outbox_changes,
    upsert,
)
from tests.api.conftest import Account, Register

SUBJECT = "api.buildings.apply"
STATION = {
    "name": "Station",
    "address": "Platz 1",
    "city": "Bern",
    "country": "CH",
    "latitude": 46.948,
    "longitude": 7.4474,
    "floors": 2,
    "notes": "badge needed",
}
# Fields that differ between two organizations running the same scenario.
VOLATILE = {"id", "updated_at", "created_at"}


@dataclass
class Setup:
    """One organization's records before the push, and the ids the push uses."""

    account: Account
    names: dict[str, uuid.UUID]  # a name in the scenario -> this organization's id


async def set_up(
    client: httpx.AsyncClient, account: Account, theirs: dict[str, uuid.UUID]
) -> Setup:
    names = dict(theirs)
    for name, fields in {
        "live": {"name": "Live"},
        "gone": {"name": "Gone"},
        "tomb": {"name": "Tomb"},
        "edit": STATION,
        "stale": {"name": "Stale"},
        "same": {"name": "Same", "floors": 3, "latitude": 46.948},
        "remove": {"name": "Remove"},
        "remove_any": {"name": "Remove any"},
        "remove_stale": {"name": "Remove stale"},
    }.items():
        names[name] = uuid.UUID((await create_building(client, account, **fields))["id"])
    for name in ("gone", "tomb"):
        gone = await client.delete(building_url(str(names[name])), headers=account.auth)
        assert gone.status_code == 204
    fresh = ("new", "twice", "bad", "unknown", "empty", "station", "dropped", "missing")
    return Setup(account, {**names, **{name: uuid.uuid4() for name in fresh}})


async def theirs(client: httpx.AsyncClient, account: Account) -> dict[str, uuid.UUID]:
    """Another organization's buildings: their ids must say nothing about them."""
    return {
        name: uuid.UUID((await create_building(client, account, name=name))["id"])
        for name in ("theirs", "theirs_update", "theirs_delete")
    }


def mixed_batch(ids: dict[str, uuid.UUID]) -> list[Mutation]:
    """Creates that go set-based, mixed with every case that must not."""
    return [
        upsert(1, ids["new"], {"name": "New", "city": "Lyon", "floors": 4}),
        upsert(2, ids["live"], {"name": "Copy"}),  # taken: conflict with the record
        upsert(3, ids["gone"], {"name": "Reborn"}),  # taken, deleted: conflict, no record
        upsert(4, ids["theirs"], {"name": "Stolen"}),  # another organization's: not_found
        upsert(5, ids["twice"], {"name": "Twice"}),  # the same id twice: in order
        upsert(6, ids["twice"], {"floors": 7}, base_version=1),
        upsert(7, ids["bad"], {"name": "Bad", "floors": 301}),  # out of bounds
        upsert(8, ids["unknown"], {"name": "Odd", "colour": "red"}),  # unknown field
        upsert(9, ids["empty"], None),  # no data
        upsert(10, ids["live"], {"city": "Basel"}, base_version=1),  # after the conflict
        upsert(11, ids["station"], STATION),
        upsert(12, ids["dropped"], {"name": "Dropped"}),
        delete(13, ids["dropped"], base_version=1),
        upsert(
            14, ids["edit"], {"city": "Basel", "latitude": 47.5596, "notes": None}, base_version=1
        ),
        upsert(15, ids["stale"], {"city": "Zug"}, base_version=2),  # conflict
        upsert(16, ids["same"], {"floors": 3, "latitude": 46.948}, base_version=1),  # no write
        upsert(17, ids["theirs_update"], {"name": "Mine"}, base_version=1),  # not_found
        upsert(18, ids["missing"], {"floors": 301}, base_version=1),  # invalid first
        upsert(19, uuid.UUID(int=ids["missing"].int ^ 1), {"name": "X"}, base_version=1),
        delete(20, ids["remove"], base_version=1),
        delete(21, ids["remove_any"]),
        delete(22, ids["remove_stale"], base_version=5),  # conflict with the record
        delete(23, ids["tomb"]),  # already deleted: applied at its version
        delete(24, ids["theirs_delete"]),  # another organization's: applied, nothing said
        delete(25, uuid.UUID(int=ids["missing"].int ^ 2), base_version=2),  # nobody's
    ]


def comparable(result: MutationResult) -> tuple[Any, ...]:
    record = None if result.record is None else without_volatile(result.record)
    error = None if result.error is None else result.error.model_dump()
    return (result.mutation_id, result.status, result.version, record, error)


def without_volatile(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if key not in VOLATILE}


async def in_order_only(runtime: Runtime, account: Account, batch: list[Mutation]) -> list[Any]:
    """The results of the per-mutation path alone (as before the set-based one)."""
    request = apply_request(account, batch)
    async with transaction(runtime) as session:
        mutations = BuildingMutations(
            session, BuildingService(session=session, runtime=runtime), request.caller
        )
        applied = await apply_in_order(session, applied_mutations, request, mutations.apply)
    return applied.results


async def changes_of(runtime: Runtime, setup: Setup) -> list[tuple[Any, ...]]:
    """The organization's change events, in outbox order, with names for ids."""
    name_of = {value: name for name, value in setup.names.items()}
    changes = await outbox_changes(runtime, setup.account.claims["org"])
    return [
        (
            name_of.get(uuid.UUID(change["id"])),
            change["op"],
            change["version"],
            None if change["data"] is None else without_volatile(change["data"]),
        )
        for change in changes
    ]


async def test_a_mixed_push_gives_what_in_order_application_gives(
    client: httpx.AsyncClient, register: Register, bus: Bus, runtime: Runtime
) -> None:
    other = await theirs(client, await register())
    set_based = await set_up(client, await register(), other)
    in_order = await set_up(client, await register(), other)
    before = await changes_of(runtime, set_based)

    reply = await bus.request(
        SUBJECT, apply_request(set_based.account, mixed_batch(set_based.names)), AppliedMutations
    )
    reference = await in_order_only(runtime, in_order.account, mixed_batch(in_order.names))

    assert [comparable(result) for result in reply.results] == [
        comparable(result) for result in reference
    ]
    applied, conflict, rejected = (
        MutationStatus.APPLIED,
        MutationStatus.CONFLICT,
        MutationStatus.REJECTED,
    )
    assert [(result.status, result.version) for result in reply.results] == [
        (applied, 1),
        (conflict, 1),
        (conflict, 2),
        (rejected, None),
        (applied, 1),
        (applied, 2),
        (rejected, None),
        (rejected, None),
        (rejected, None),
        (applied, 2),
        (applied, 1),
        (applied, 1),
        (applied, 2),
        (applied, 2),
        (conflict, 1),
        (applied, 1),
        (rejected, None),
        (rejected, None),
        (rejected, None),
        (applied, 2),
        (applied, 2),
        (conflict, 1),
        (applied, 2),
        (applied, None),
        (applied, None),
    ]
    # The same records, as HTTP shows them.
    for name in ("new", "twice", "live", "station", "edit", "same", "stale"):
        mine = await get_building(client, set_based.account, str(set_based.names[name]))
        alike = await get_building(client, in_order.account, str(in_order.names[name]))
        assert without_volatile(mine) == without_volatile(alike), name
    # One change per write, each with the record after it; the set-based ones first.
    changes = (await changes_of(runtime, set_based))[len(before) :]
    reference_changes = (await changes_of(runtime, in_order))[len(before) :]
    assert sorted(changes, key=repr) == sorted(reference_changes, key=repr)
    assert len(changes) == 10
    # The independent mutations went together, before the rest (in request order).
    assert [change[0] for change in changes[:5]] == [
        "new",
        "station",
        "edit",
        "remove",
        "remove_any",
    ]
    assert [change[0] for change in reference_changes[:2]] == ["new", "twice"]
    assert [change[0] for change in changes].count("twice") == 2
    (station,) = [change for change in changes if change[0] == "station"]
    assert station[3] == {**STATION, "version": 1}
    (edit,) = [change for change in changes if change[0] == "edit"]
    assert edit[3] == {**STATION, "city": "Basel", "latitude": 47.5596, "notes": None, "version": 2}
    assert [change[1:3] for change in changes if change[0] == "remove"] == [("delete", 2)]


async def test_a_replayed_set_based_push_returns_the_stored_results(
    client: httpx.AsyncClient,
    register: Register,
    bus: Bus,
    runtime: Runtime,
    change_feed: OpenFeed,
) -> None:
    admin = await register()
    organization = admin.claims["org"]
    feed = await change_feed(organization)
    ids = [uuid.uuid4() for _ in range(50)]
    batch = [upsert(n, building_id, {"name": f"B{n}"}) for n, building_id in enumerate(ids, 1)]
    batch.append(upsert(51, ids[0], {"name": "Again"}))  # a later create of a taken id

    first = await bus.request(SUBJECT, apply_request(admin, batch), AppliedMutations)
    rows = await outbox_changes(runtime, organization)
    # A replay that also carries one new mutation: only that one is applied.
    extra = upsert(52, uuid.uuid4(), {"name": "Extra"})
    second = await bus.request(SUBJECT, apply_request(admin, [*batch, extra]), AppliedMutations)

    assert second.results[:51] == first.results
    assert [result.status for result in first.results] == [MutationStatus.APPLIED] * 50 + [
        MutationStatus.CONFLICT
    ]
    assert (second.results[51].status, second.results[51].version) == (MutationStatus.APPLIED, 1)
    assert len(rows) == 50
    changes = await feed.wait_for_count("buildings", 51)
    assert sorted(change.id for change in changes) == sorted([*ids, extra.id])
    assert all((change.op, change.version) == (ChangeOp.UPSERT, 1) for change in changes)
    # Nothing more than one change per create reached the stream.
    assert len(await feed.drain()) == 51


async def test_a_statement_postgresql_refuses_leaves_the_push_to_the_in_order_path(
    client: httpx.AsyncClient,
    register: Register,
    bus: Bus,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    admin = await register()
    first, second = uuid.uuid4(), uuid.uuid4()

    async def refused(connection: asyncpg.Connection, *_: object) -> Any:
        # A real error inside the transaction, as an unforeseen constraint would raise.
        return await connection.fetch("SELECT 1 / 0")

    monkeypatch.setattr(bulk, "insert_buildings", refused)
    reply = await bus.request(
        SUBJECT,
        apply_request(
            admin,
            [upsert(1, first, {"name": "First"}), upsert(2, second, {"name": "Second"})],
        ),
        AppliedMutations,
    )

    assert [(result.status, result.version) for result in reply.results] == [
        (MutationStatus.APPLIED, 1),
        (MutationStatus.APPLIED, 1),
    ]
    assert (await get_building(client, admin, str(second)))["name"] == "Second"
    assert len(await outbox_changes(runtime, admin.claims["org"])) == 2
