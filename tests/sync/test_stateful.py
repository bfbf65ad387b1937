"""Hypothesis stateful test: ten devices edit offline, lose replies, retry, pull in any
order, while the server's API edits too. At quiescence every device holds exactly the
server's view of its user's scope, no acknowledged write is lost, none applied twice.

The system runs on its own event loop in a thread, so Hypothesis drives it with plain
(synchronous) rules; each rule waits for its requests to finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from fieldsync.api.service import SERVICE as API
from fieldsync.client import SyncClient
from fieldsync.kit.embedded.nats import NatsEndpoints
from fieldsync.kit.http.app import create_app
from fieldsync.kit.runtime import Endpoints, Runtime
from fieldsync.kit.settings import Settings
from fieldsync.sync.service import SERVICE as SYNC
from fieldsync.workflows.service import SERVICE as WORKFLOWS
from tests import servers
from tests.api.conftest import STRONG_PASSWORD, unique_email
from tests.conftest import FAST_PASSWORD_HASHING
from tests.waiting import eventually

T = TypeVar("T")
PUSH = "/api/v1/sync/push"
COLLECTIONS = ("buildings", "workflows", "workflow_steps")
# Devices per role: ten in all, several per user, as people carry a phone and a tablet.
DEVICES = (("admin", 3), ("manager", 3), ("technician", 4))


class System:
    """api, workflows and sync in one runtime, on an event loop of their own."""

    def __init__(self, settings: Settings, endpoints: Endpoints) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runtime = Runtime(settings, endpoints, [API, WORKFLOWS, SYNC])
        self.run(self.runtime.start())
        transport = httpx.ASGITransport(app=create_app(self.runtime))
        self.http = httpx.AsyncClient(transport=transport, base_url="http://fieldsync.test")

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the system's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=120)

    def close(self) -> None:
        self.run(self.http.aclose())
        self.run(self.runtime.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def system(
    nats_server: NatsEndpoints,
    api_database_url: str,
    workflows_database_url: str,
    sync_database_url: str,
    redis_url: str,
    signing_key_file: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[System]:
    settings_ = Settings(
        data_dir=tmp_path_factory.mktemp("stateful"),
        jwt_private_key_file=signing_key_file,
        redis_key_prefix=servers.RUN_TAG,
        rate_limit_per_ip="1000000/minute",
        rate_limit_per_user="1000000/minute",
        rate_limit_auth_per_ip="1000000/minute",
        **FAST_PASSWORD_HASHING,  # type: ignore[arg-type]
    )
    endpoints = Endpoints(
        nats_url=nats_server.url,
        nats_monitor_url=nats_server.monitor_url,
        database_urls={
            "api": api_database_url,
            "workflows": workflows_database_url,
            "sync": sync_database_url,
        },
        redis_url=redis_url,
    )
    running = System(settings_, endpoints)
    yield running
    running.close()


@dataclass
class Ack:
    """An acknowledged write of a building: the version it produced and what it set."""

    version: int
    data: dict[str, Any] | None  # None: a delete


@dataclass
class Device:
    """One simulated device: its user, its SDK client, and whether it has a signal."""

    role: str
    client: SyncClient
    online: bool = True


@dataclass
class User:
    role: str
    access_token: str
    user_id: str

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.access_token}"}


@dataclass
class World:
    """One example's organization: users, devices and every acknowledged building write."""

    users: dict[str, User] = field(default_factory=dict)
    devices: list[Device] = field(default_factory=list)
    acks: dict[str, list[Ack]] = field(default_factory=dict)


async def sign_up_users(system: System) -> dict[str, User]:
    """One organization for the whole run: its admin, a manager and a technician."""
    http = system.http
    registered = await http.post(
        "/api/v1/auth/register",
        json={
            "email": unique_email("admin"),
            "password": STRONG_PASSWORD,
            "name": "A",
            "organization_name": "S",
        },
    )
    assert registered.status_code == 201, registered.text
    admin_token = registered.json()["access_token"]
    me = await http.get("/api/v1/users/me", headers={"authorization": f"Bearer {admin_token}"})
    users = {"admin": User("admin", admin_token, me.json()["id"])}
    for role in ("manager", "technician"):
        address = unique_email(role)
        created = await http.post(
            "/api/v1/users",
            json={"email": address, "password": STRONG_PASSWORD, "name": role, "role": role},
            headers=users["admin"].auth,
        )
        assert created.status_code == 201, created.text
        login = await http.post(
            "/api/v1/auth/login", json={"email": address, "password": STRONG_PASSWORD}
        )
        users[role] = User(role, login.json()["access_token"], created.json()["id"])
    return users


async def set_up(system: System, users: dict[str, User]) -> World:
    """A clean slate in the run's organization: two buildings, one assigned; new devices."""
    http = system.http
    admin = users["admin"]
    world = World(users=users)
    # The previous example's buildings go (their workflows follow asynchronously).
    page = await http.get("/api/v1/buildings?limit=200", headers=admin.auth)
    for building in page.json()["items"]:
        deleted = await http.delete(f"/api/v1/buildings/{building['id']}", headers=admin.auth)
        assert deleted.status_code == 204, deleted.text
    for index in range(2):
        response = await http.post(
            "/api/v1/buildings", json={"name": f"Seed {index}", "floors": 1}, headers=admin.auth
        )
        assert response.status_code == 201, response.text
        building_id = response.json()["id"]
        world.acks[building_id] = [Ack(1, {"name": f"Seed {index}", "floors": 1})]
        if index == 0:
            url = f"/api/v1/buildings/{building_id}/assignees/{users['technician'].user_id}"
            assert (await http.put(url, headers=admin.auth)).status_code == 204
    for role, count in DEVICES:
        for _ in range(count):
            device = SyncClient(http)
            device.use_tokens(users[role].access_token)
            world.devices.append(Device(role, device))
    return world


def pick(records: dict[str, dict[str, Any]], index: int) -> str | None:
    ids = sorted(records)
    return ids[index % len(ids)] if ids else None


class OfflineSync(RuleBasedStateMachine):
    """The rules; `system` is set by the test before the machine runs."""

    system: System

    users: dict[str, User] | None = None

    @initialize()
    def organization(self) -> None:
        if OfflineSync.users is None:
            OfflineSync.users = self.system.run(sign_up_users(self.system))
        self.world = self.system.run(set_up(self.system, OfflineSync.users))
        for device in self.world.devices:
            self.system.run(device.client.pull())

    def device(self, index: int) -> Device:
        return self.world.devices[index % len(self.world.devices)]

    # --- offline edits ------------------------------------------------------

    @rule(index=st.integers(0, 9), floors=st.integers(0, 300))
    def create_building(self, index: int, floors: int) -> None:
        device = self.device(index)
        if device.role != "technician":
            device.client.upsert(
                "buildings", str(uuid.uuid4()), {"name": f"New {floors}", "floors": floors}
            )

    @rule(index=st.integers(0, 9), which=st.integers(0, 50), floors=st.integers(0, 300))
    def edit_building(self, index: int, which: int, floors: int) -> None:
        # Technicians try too: the server refuses them, and their view falls back.
        device = self.device(index)
        target = pick(device.client.store.view("buildings"), which)
        if target is not None:
            device.client.upsert("buildings", target, {"floors": floors, "notes": f"n{floors}"})

    @rule(index=st.integers(0, 9), which=st.integers(0, 50))
    def delete_building(self, index: int, which: int) -> None:
        device = self.device(index)
        if device.role == "technician":
            return
        target = pick(device.client.store.view("buildings"), which)
        if target is not None:
            device.client.delete("buildings", target)

    @rule(
        index=st.integers(0, 9),
        which=st.integers(0, 500),
        done=st.booleans(),
        value=st.text(max_size=5),
    )
    def edit_step(self, index: int, which: int, done: bool, value: str) -> None:
        device = self.device(index)
        target = pick(device.client.store.view("workflow_steps"), which)
        if target is not None:
            device.client.upsert("workflow_steps", target, {"done": done, "value": value or None})

    # --- connectivity and sync -------------------------------------------------

    @rule(index=st.integers(0, 9))
    def toggle_signal(self, index: int) -> None:
        device = self.device(index)
        device.online = not device.online

    @rule(index=st.integers(0, 9), reply_lost=st.booleans())
    def push(self, index: int, reply_lost: bool) -> None:
        device = self.device(index)
        if not device.online:
            return
        if reply_lost:
            self.system.run(self._push_and_lose_the_reply(device))
        else:
            self.system.run(self._push(device))

    @rule(index=st.integers(0, 9))
    def pull(self, index: int) -> None:
        device = self.device(index)
        if device.online:
            self.system.run(device.client.pull())

    # --- the server side ---------------------------------------------------------

    @rule(which=st.integers(0, 50), floors=st.integers(0, 300))
    def server_edit(self, which: int, floors: int) -> None:
        self.system.run(self._server_edit(which, floors))

    @rule(which=st.integers(0, 50), assign=st.booleans())
    def reassign(self, which: int, assign: bool) -> None:
        self.system.run(self._reassign(which, assign))

    # --- quiescence ----------------------------------------------------------------

    @invariant()
    def views_are_well_formed(self) -> None:
        for device in self.world.devices:
            for record in device.client.store.view("buildings").values():
                assert "id" in record

    def teardown(self) -> None:
        if not hasattr(self, "world"):
            return
        self.system.run(self._quiesce_and_check())

    # --- helpers (on the system's loop) ---------------------------------------------

    async def _push(self, device: Device) -> None:
        before = {m.mutation_id: m for m in device.client.store.pending}
        for result in await device.client.push():
            mutation = before.get(result["mutation_id"])
            if mutation is None or mutation.collection != "buildings":
                continue
            if result["status"] == "applied" and result.get("version") is not None:
                data = None if mutation.op == "delete" else dict(mutation.data or {})
                self.world.acks.setdefault(mutation.id, []).append(Ack(result["version"], data))

    async def _push_and_lose_the_reply(self, device: Device) -> None:
        store = device.client.store
        batch = store.next_batch(500)
        if not batch:
            return
        for mutation in batch:
            mutation.sent = True
        response = await self.system.http.post(
            PUSH,
            json={"client_id": store.client_id, "mutations": [m.to_wire() for m in batch]},
            headers=device.client._headers(),
        )
        assert response.status_code == 200, response.text
        # The reply never reaches the device: its queue still holds the mutations.

    async def _server_edit(self, which: int, floors: int) -> None:
        admin = self.world.users["admin"]
        target = pick({key: {} for key in self.world.acks}, which)
        if target is None:
            return
        response = await self.system.http.patch(
            f"/api/v1/buildings/{target}", json={"floors": floors}, headers=admin.auth
        )
        if response.status_code == 200:
            self.world.acks[target].append(Ack(response.json()["version"], {"floors": floors}))
        else:
            assert response.status_code == 404, response.text  # deleted meanwhile

    async def _reassign(self, which: int, assign: bool) -> None:
        admin = self.world.users["admin"]
        target = pick({key: {} for key in self.world.acks}, which)
        if target is None:
            return
        url = f"/api/v1/buildings/{target}/assignees/{self.world.users['technician'].user_id}"
        response = await (
            self.system.http.put(url, headers=admin.auth)
            if assign
            else self.system.http.delete(url, headers=admin.auth)
        )
        assert response.status_code in (204, 404), response.text

    async def _quiesce_and_check(self) -> None:
        for device in self.world.devices:
            device.online = True
            await self._push(device)
            assert device.client.store.pending == []
        # Server-side consequences (a pushed building's default workflow, a deleted
        # building's workflows) follow asynchronously: quiescence is when they are done
        # and every device has pulled them.
        with contextlib.suppress(TimeoutError):  # the assertions below show what differs
            await eventually(self._converged, timeout=20, interval=0.02)
        views = await self._server_views()
        for device in self.world.devices:
            for collection in COLLECTIONS:
                assert device.client.store.view(collection) == views[device.role][collection], (
                    device.role,
                    collection,
                )
        self._check_acknowledged_writes(views["admin"]["buildings"])

    async def _server_views(self) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
        """Each user's scope as a fresh pull gives it, by collection."""
        views = {}
        for role, user in self.world.users.items():
            fresh = SyncClient(self.system.http)
            fresh.use_tokens(user.access_token)
            await fresh.pull()
            views[role] = {name: fresh.store.view(name) for name in COLLECTIONS}
        return views

    async def _converged(self) -> bool:
        admin = SyncClient(self.system.http)
        admin.use_tokens(self.world.users["admin"].access_token)
        await admin.pull()
        buildings = admin.store.view("buildings")
        workflows_of = {w["building_id"] for w in admin.store.view("workflows").values()}
        if set(buildings) != workflows_of:
            return False  # default workflows still being made or cancelled
        for device in self.world.devices:
            await device.client.pull()
        views = await self._server_views()
        return all(
            device.client.store.view(name) == views[device.role][name]
            for device in self.world.devices
            for name in COLLECTIONS
        )

    def _check_acknowledged_writes(self, server: dict[str, dict[str, Any]]) -> None:
        for building_id, acks in self.world.acks.items():
            last = max(acks, key=lambda ack: ack.version)
            record = server.get(building_id)
            if last.data is None:
                assert record is None, building_id  # the last acknowledged write deleted it
                continue
            assert record is not None, building_id
            # Applied once each: no version beyond the last acknowledged write.
            assert record["version"] == last.version, (building_id, acks, record)
            # Not lost: the last acknowledged write's fields are what the server holds.
            for name, value in last.data.items():
                assert record[name] == value, (building_id, name, acks, record)


# About a second per example on a 2-core machine: well past pytest-timeout's default.
@pytest.mark.timeout(900)
def test_offline_devices_converge(system: System) -> None:
    OfflineSync.system = system
    OfflineSync.users = None
    run = OfflineSync.TestCase
    run.settings = settings(
        max_examples=200,
        stateful_step_count=12,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    run().runTest()
