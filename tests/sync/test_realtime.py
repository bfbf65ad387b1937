"""Realtime pokes over SSE and WebSocket, in scope, with heartbeats; slow clients dropped."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
import websockets
from websockets.asyncio.client import connect

from fieldsync.contracts.identity import Caller, Role
from fieldsync.contracts.sync import Poke
from fieldsync.kit.runtime import Runtime
from fieldsync.kit.settings import Settings
from fieldsync.sync.pull.checkpoint import Position, encode
from fieldsync.sync.realtime.endpoints import serve_listener
from fieldsync.sync.realtime.hub import HEARTBEAT_SLICE, hub_of
from fieldsync.sync.realtime.listener import HEARTBEAT, Frames, Listener
from tests.sync.conftest import (
    CreateUser,
    Register,
    Replica,
    create_building,
    has_workflows,
    pulled_until,
)
from tests.waiting import until


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """(event, data) pairs of an SSE response; ("ready", "") once registered."""
    event = ""
    async for line in response.aiter_lines():
        if line == ": ready":
            yield "ready", ""
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            yield event, line[5:].strip()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Frequent heartbeats and little patience, so both show within a test."""
    return settings.model_copy(
        update={"sync_heartbeat_seconds": 0.05, "sync_slow_client_seconds": 0.2}
    )


async def next_poke(events: AsyncIterator[tuple[str, str]]) -> str:
    """The next poke's data, past heartbeats."""
    async with asyncio.timeout(5):
        while True:
            event, data = await anext(events)
            if event == "poke":
                return data


async def poked_until(
    events: AsyncIterator[tuple[str, str]],
    client: httpx.AsyncClient,
    replica: Replica,
    condition: Callable[[Replica], bool],
) -> None:
    """Pull at each poke until `condition` holds for the pulled copy."""
    async with asyncio.timeout(5):
        while True:
            await next_poke(events)
            await replica.pull(client)
            if condition(replica):
                return


async def test_sse_pokes_when_the_scope_changes(
    client: httpx.AsyncClient,
    register: Register,
    create_user: CreateUser,
    live_url: str,
    runtime: Runtime,
) -> None:
    admin = await register()
    technician = await create_user(admin, "technician")
    elsewhere = await create_building(client, admin, name="Not theirs")
    theirs = await create_building(client, admin, name="Theirs")
    url = f"/api/v1/buildings/{theirs['id']}/assignees/{technician.user_id}"
    assert (await client.put(url, headers=admin.auth)).status_code == 204
    admin_view = Replica(admin)
    await pulled_until(client, admin_view, has_workflows(2))
    # Everything so far is in the replica: no poke of it can arrive on the streams.
    await pulled_until(client, Replica(technician), has_workflows(1))

    tech_url = f"/api/v1/sync/stream?access_token={technician.access_token}"
    async with (
        httpx.AsyncClient(base_url=live_url, timeout=10) as http,
        http.stream("GET", "/api/v1/sync/stream", headers=admin.auth) as admin_stream,
        http.stream("GET", tech_url) as tech_stream,
    ):
        assert admin_stream.status_code == 200
        assert admin_stream.headers["content-type"].startswith("text/event-stream")
        admin_events = sse_events(admin_stream)
        tech_events = sse_events(tech_stream)
        assert await anext(admin_events) == ("ready", "")
        assert await anext(tech_events) == ("ready", "")
        assert hub_of(runtime).listener_count == 2

        # A change outside the technician's buildings pokes the admin only.
        patched = await client.patch(
            f"/api/v1/buildings/{elsewhere['id']}", json={"floors": 1}, headers=admin.auth
        )
        assert patched.status_code == 200
        await poked_until(
            admin_events,
            client,
            admin_view,
            lambda r: r.of("buildings")[elsewhere["id"]]["floors"] == 1,
        )

        # Then one inside it: the technician's first poke is this one.
        patched = await client.patch(
            f"/api/v1/buildings/{theirs['id']}", json={"floors": 2}, headers=admin.auth
        )
        assert patched.status_code == 200
        await next_poke(tech_events)
        tech_view = Replica(technician)
        await tech_view.pull(client)
        assert set(tech_view.of("buildings")) == {theirs["id"]}
        assert tech_view.of("buildings")[theirs["id"]]["floors"] == 2

    # The clients left: their connections are no longer offered pokes.
    await until(lambda: hub_of(runtime).listener_count == 0)


async def test_sse_refuses_a_missing_or_bad_token(live_url: str) -> None:
    async with httpx.AsyncClient(base_url=live_url, timeout=10) as http:
        missing = await http.get("/api/v1/sync/stream")
        assert missing.status_code == 401
        assert missing.headers["content-type"] == "application/problem+json"
        bad = await http.get("/api/v1/sync/stream?access_token=nonsense")
        assert bad.status_code == 401


async def test_websocket_pokes_and_refuses_bad_tokens(
    client: httpx.AsyncClient, register: Register, live_url: str, runtime: Runtime
) -> None:
    admin = await register()
    ws_url = live_url.replace("http://", "ws://") + "/api/v1/sync/ws"
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with connect(f"{ws_url}?access_token=nonsense"):
            pass
    assert refused.value.response.status_code == 403

    async with connect(ws_url, additional_headers=admin.auth) as socket:
        building = await create_building(client, admin)
        replica = Replica(admin)
        async with asyncio.timeout(5):
            while building["id"] not in replica.of("buildings"):
                message = json.loads(await socket.recv())
                if "checkpoint" in message:
                    await replica.pull(client)
                else:
                    assert message == {"heartbeat": True}
        assert hub_of(runtime).listener_count == 1
    await until(lambda: hub_of(runtime).listener_count == 0)


def a_caller(role: Role = Role.ADMIN) -> Caller:
    return Caller(
        user_id=uuid.uuid4(), organization_id=uuid.uuid4(), role=role, session_id=uuid.uuid4()
    )


async def no_scope() -> frozenset[uuid.UUID]:
    return frozenset()


def poke_frames(number: int) -> Frames:
    return Frames.of("poke", {"checkpoint": str(number)})


async def test_heartbeats_while_nothing_changes(runtime: Runtime) -> None:
    written: list[Frames] = []

    async def takes(frames: Frames) -> None:
        written.append(frames)
        if len(written) == 3:
            listener.close()

    listener = Listener(a_caller(), no_scope, takes)
    await asyncio.wait_for(serve_listener(runtime, listener), 5)
    assert written == [HEARTBEAT, HEARTBEAT, HEARTBEAT]
    assert hub_of(runtime).listener_count == 0


async def test_heartbeats_reach_every_connection_slice_by_slice(runtime: Runtime) -> None:
    hub = hub_of(runtime)
    count = HEARTBEAT_SLICE * 2 + 1
    beaten: set[int] = set()
    listeners: list[Listener] = []
    for number in range(count):

        async def takes(frames: Frames, number: int = number) -> None:
            assert frames == HEARTBEAT
            beaten.add(number)

        listeners.append(Listener(a_caller(), no_scope, takes))
    serving = [asyncio.create_task(serve_listener(runtime, listener)) for listener in listeners]
    await until(lambda: len(beaten) == count)
    for listener in listeners:
        listener.close()
    await asyncio.wait_for(asyncio.gather(*serving), 5)
    assert hub.listener_count == 0


async def test_a_slow_client_is_dropped(runtime: Runtime) -> None:
    hub = hub_of(runtime)
    abandoned = asyncio.Event()

    async def never_takes(frames: Frames) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            abandoned.set()

    listener = Listener(a_caller(), no_scope, never_takes)
    relay = asyncio.create_task(serve_listener(runtime, listener))
    await until(lambda: hub.listener_count == 1)
    # Its first heartbeat never goes through: the connection ends by itself.
    await asyncio.wait_for(relay, 5)
    assert listener.closed
    assert abandoned.is_set()
    assert hub.listener_count == 0


async def test_only_the_newest_poke_waits_behind_a_slow_write() -> None:
    taken = asyncio.Event()
    written: list[Frames] = []

    async def slow_at_first(frames: Frames) -> None:
        written.append(frames)
        if len(written) == 1:
            await taken.wait()

    listener = Listener(a_caller(), no_scope, slow_at_first)
    attending = asyncio.create_task(listener.attend(slow_client_seconds=30))
    now = asyncio.get_running_loop().time()
    for number in (1, 2, 3):
        listener.offer(poke_frames(number), None, [], now)
    listener.beat(idle_since=now + 60, now=now)  # a heartbeat replaces no poke
    assert written == [poke_frames(1)]
    assert listener.pending == poke_frames(3)

    taken.set()
    await until(lambda: len(written) == 2)
    listener.close()
    await asyncio.wait_for(attending, 5)
    assert written == [poke_frames(1), poke_frames(3)]


async def test_a_technician_gets_the_pokes_of_their_buildings() -> None:
    ours, other, new = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    assigned = {ours}
    loads = 0

    async def load_scope() -> frozenset[uuid.UUID]:
        nonlocal loads
        loads += 1
        return frozenset(assigned)

    written: list[Frames] = []

    async def takes(frames: Frames) -> None:
        written.append(frames)

    technician = a_caller(Role.TECHNICIAN)
    listener = Listener(technician, load_scope, takes)
    now = asyncio.get_running_loop().time()
    listener.offer(poke_frames(1), frozenset({other}), [], now)  # scope not known yet: passed
    attending = asyncio.create_task(listener.attend(slow_client_seconds=30))
    await until(lambda: listener.buildings == {ours})

    listener.offer(poke_frames(2), frozenset({other}), [], now)
    listener.offer(poke_frames(3), frozenset({ours, other}), [], now)
    listener.offer(poke_frames(4), None, [], now)  # buildings unknown: passed
    assert written == [poke_frames(1), poke_frames(3), poke_frames(4)]

    # Their assignments changed: that poke is passed, and the scope reloaded.
    assigned = {new}
    listener.offer(poke_frames(5), frozenset({other}), [technician.user_id], now)
    await until(lambda: listener.buildings == {new})
    assert loads == 2
    listener.offer(poke_frames(6), frozenset({ours}), [], now)
    listener.offer(poke_frames(7), frozenset({new}), [], now)
    assert written[3:] == [poke_frames(5), poke_frames(7)]

    listener.close()
    await asyncio.wait_for(attending, 5)


async def test_the_hub_writes_a_poke_to_its_organizations_listeners(runtime: Runtime) -> None:
    hub = hub_of(runtime)
    ours, theirs = a_caller(), a_caller()
    written: dict[int, list[Frames]] = {0: [], 1: [], 2: []}

    def listener(number: int, caller: Caller) -> Listener:
        async def takes(frames: Frames) -> None:
            if frames != HEARTBEAT:
                written[number].append(frames)

        return Listener(caller, no_scope, takes)

    listeners = [listener(0, ours), listener(1, ours), listener(2, theirs)]
    serving = [asyncio.create_task(serve_listener(runtime, each)) for each in listeners]
    await until(lambda: hub.listener_count == 3)
    await hub.on_poke(
        Poke(organization_id=ours.organization_id, version=7, buildings=None, users=[])
    )
    poke = Frames.of("poke", {"checkpoint": encode(Position(7))})
    assert poke.sse == b"event: poke\ndata: " + poke.json + b"\n\n"
    assert written == {0: [poke], 1: [poke], 2: []}

    for each in listeners:
        each.close()
    await asyncio.wait_for(asyncio.gather(*serving), 5)
    assert hub.listener_count == 0
