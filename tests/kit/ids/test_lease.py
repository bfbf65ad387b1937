"""Node id leases on a real PostgreSQL: exclusivity, expiry, release, heartbeat, processes.

These tests use their own freshly migrated database, so the leases they claim, expire
and squat never touch the api database other tests run against.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from fieldsync.kit.db.admin import drop_database, ensure_database
from fieldsync.kit.db.engine import async_url
from fieldsync.kit.db.migrations import upgrade_async
from fieldsync.kit.errors import Unavailable
from fieldsync.kit.ids import decompose
from fieldsync.kit.ids.lease import LeasedIds, NodeLease
from fieldsync.kit.ids.snowflake import MAX_NODE
from tests import servers

API_MIGRATIONS = "fieldsync.api:migrations"
TTL = 30.0
# Heartbeat tests renew every half second.
SHORT_TTL = 1.5


@pytest.fixture(scope="module")
async def lease_database_url() -> AsyncIterator[str]:
    """A database of its own, migrated to head, dropped when the module is done."""
    await servers.require_postgres()
    url = servers.database_url_for("leases")
    assert await ensure_database(url)
    try:
        await upgrade_async(API_MIGRATIONS, url)
        yield url
    finally:
        await drop_database(url)


@pytest.fixture
async def engine(lease_database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the lease database, every node id free at the start."""
    engine = create_async_engine(async_url(lease_database_url))
    async with engine.begin() as connection:
        await connection.execute(text("DELETE FROM node_leases"))
    yield engine
    await engine.dispose()


class FakeMonotonic:
    """A monotonic clock that moves only when a test moves it."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


async def execute(engine: AsyncEngine, sql: str, **params: Any) -> None:
    async with engine.begin() as connection:
        await connection.execute(text(sql), params)


async def holders(engine: AsyncEngine) -> dict[int, str]:
    """Node id -> holder of every lease that has not expired."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT node_id, holder FROM node_leases WHERE expires_at > now()")
        )
        return {int(node_id): str(holder) for node_id, holder in rows}


async def expire(engine: AsyncEngine, node_id: int) -> None:
    await execute(
        engine,
        "UPDATE node_leases SET expires_at = now() - interval '1 second' WHERE node_id = :node",
        node=node_id,
    )


async def eventually(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll `condition` until it holds; fail after a generous bound."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while not await condition():
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        await asyncio.sleep(0.02)


async def test_two_leases_get_different_node_ids(engine: AsyncEngine) -> None:
    first = NodeLease(engine, ttl_seconds=TTL)
    second = NodeLease(engine, ttl_seconds=TTL)
    assert not first.is_valid()

    assert await first.acquire() == 0
    assert await second.acquire() == 1

    assert first.holder != second.holder
    assert first.is_valid()
    assert second.is_valid()
    assert await holders(engine) == {0: first.holder, 1: second.holder}


async def test_concurrent_claimants_each_get_a_node_id_at_the_first_attempt(
    engine: AsyncEngine, lease_database_url: str
) -> None:
    claimants = 16
    crowd = create_async_engine(async_url(lease_database_url), pool_size=claimants)
    try:
        # Open every connection first so the claims really hit the database together.
        connections = [await crowd.connect() for _ in range(claimants)]
        for connection in connections:
            await connection.close()
        leases = [NodeLease(crowd, ttl_seconds=TTL) for _ in range(claimants)]
        # One attempt each: claims take turns, so nobody loses a race for the same id.
        claimed = await asyncio.gather(*(lease.acquire(attempts=1) for lease in leases))
    finally:
        await crowd.dispose()
    assert sorted(claimed) == list(range(claimants))
    assert await holders(engine) == {lease.node_id: lease.holder for lease in leases}


async def test_an_expired_lease_goes_to_the_next_claimant(engine: AsyncEngine) -> None:
    first = NodeLease(engine, ttl_seconds=TTL)
    second = NodeLease(engine, ttl_seconds=TTL)
    assert await first.acquire() == 0
    await expire(engine, 0)

    assert await second.acquire() == 0
    assert await holders(engine) == {0: second.holder}

    with pytest.raises(Unavailable, match="expired"):
        await first.renew()
    assert not first.is_valid()
    # The new holder is unaffected and keeps renewing.
    await second.renew()
    assert second.is_valid()
    assert await holders(engine) == {0: second.holder}


async def test_release_frees_the_node_id_for_the_next_claimant(engine: AsyncEngine) -> None:
    first = NodeLease(engine, ttl_seconds=TTL)
    second = NodeLease(engine, ttl_seconds=TTL)
    assert await first.acquire() == 0
    assert await second.acquire() == 1

    await first.release()
    assert not first.is_valid()
    assert await holders(engine) == {1: second.holder}

    third = NodeLease(engine, ttl_seconds=TTL)
    assert await third.acquire() == 0
    # A late second release by the old holder must not free the new holder's id.
    await first.release()
    assert await holders(engine) == {0: third.holder, 1: second.holder}
    with pytest.raises(Unavailable):
        await first.renew()


async def test_a_lease_never_acquired_cannot_renew_and_releases_nothing(
    engine: AsyncEngine,
) -> None:
    other = NodeLease(engine, ttl_seconds=TTL)
    await other.acquire()
    lease = NodeLease(engine, ttl_seconds=TTL)
    with pytest.raises(Unavailable, match="never acquired"):
        await lease.renew()
    await lease.release()
    assert not lease.is_valid()
    assert await holders(engine) == {0: other.holder}


async def test_validity_ends_at_the_monotonic_deadline_counted_from_sending(
    engine: AsyncEngine,
) -> None:
    clock = FakeMonotonic()

    # Each lease statement "takes" 10 s on the fake clock: the deadline must count from
    # before the request was sent, never from when the answer arrived.
    def slow_round_trip(*_: object) -> None:
        clock.now += 10

    event.listen(engine.sync_engine, "before_cursor_execute", slow_round_trip)
    try:
        lease = NodeLease(engine, ttl_seconds=TTL, monotonic=clock)
        clock.now = 1_000.0
        await lease.acquire()
        assert clock.now > 1_000.0
        clock.now = 1_000.0 + TTL - 0.001
        assert lease.is_valid()
        clock.now = 1_000.0 + TTL
        assert not lease.is_valid()

        # A renewal sent at 1,020 (before the deadline) extends it to 1,050.
        clock.now = 1_020.0
        await lease.renew()
        clock.now = 1_020.0 + TTL - 0.001
        assert lease.is_valid()
        clock.now = 1_020.0 + TTL
        assert not lease.is_valid()
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", slow_round_trip)


async def test_no_free_node_id_is_unavailable(engine: AsyncEngine) -> None:
    await execute(
        engine,
        """
        INSERT INTO node_leases (node_id, holder, expires_at)
        SELECT n, 'squatter', now() + interval '1 hour' FROM generate_series(0, :max) AS n
        """,
        max=MAX_NODE,
    )
    lease = NodeLease(engine, ttl_seconds=TTL)
    with pytest.raises(Unavailable, match="no free node id"):
        await lease.acquire(attempts=2)
    assert not lease.is_valid()

    # One lease running out is enough to get in again.
    await expire(engine, 517)
    assert await lease.acquire() == 517


def heartbeat_tasks() -> set[asyncio.Task[Any]]:
    return {task for task in asyncio.all_tasks() if task.get_name() == "node-lease-heartbeat"}


async def test_leased_ids_start_and_stop(engine: AsyncEngine) -> None:
    other = NodeLease(engine, ttl_seconds=TTL)
    assert await other.acquire() == 0
    leased = LeasedIds(engine, ttl_seconds=TTL)
    with pytest.raises(RuntimeError, match="start"):
        _ = leased.generator

    running_before = heartbeat_tasks()
    generator = await leased.start()
    started = heartbeat_tasks() - running_before
    assert len(started) == 1
    assert leased.generator is generator
    assert leased.lease.node_id == 1
    assert generator.node_id == 1
    ids = [generator.next_id() for _ in range(100)]
    assert ids == sorted(set(ids))
    assert {decompose(snowflake).node_id for snowflake in ids} == {1}
    assert await holders(engine) == {0: other.holder, 1: leased.lease.holder}

    await leased.stop()
    assert all(task.done() for task in started)
    assert await holders(engine) == {0: other.holder}
    with pytest.raises(Unavailable):
        generator.next_id()


async def test_the_heartbeat_renews_the_lease(engine: AsyncEngine) -> None:
    leased = LeasedIds(engine, ttl_seconds=SHORT_TTL)
    await leased.start()
    try:
        first_expiry = await lease_expiry(engine, leased.lease.holder)

        async def renewed() -> bool:
            return await lease_expiry(engine, leased.lease.holder) > first_expiry

        await eventually(renewed, "the heartbeat extends the lease")
        assert leased.lease.is_valid()
    finally:
        await leased.stop()


async def lease_expiry(engine: AsyncEngine, holder: str) -> Any:
    async with engine.connect() as connection:
        return await connection.scalar(
            text("SELECT expires_at FROM node_leases WHERE holder = :holder"), {"holder": holder}
        )


async def test_the_heartbeat_claims_a_new_node_id_after_losing_its_own(
    engine: AsyncEngine,
) -> None:
    leased = LeasedIds(engine, ttl_seconds=SHORT_TTL)
    generator = await leased.start()
    try:
        assert generator.node_id == 0
        # Someone else holds node 0 now (as after an expiry the process did not notice).
        await execute(
            engine,
            "UPDATE node_leases SET holder = 'intruder', expires_at = now() + interval '1 hour'"
            " WHERE node_id = 0",
        )

        async def moved() -> bool:
            return leased.lease.node_id == 1 and leased.lease.is_valid()

        await eventually(moved, "the heartbeat claims node 1")
        assert decompose(generator.next_id()).node_id == 1
        assert await holders(engine) == {0: "intruder", 1: leased.lease.holder}
    finally:
        await leased.stop()


async def test_the_heartbeat_keeps_trying_while_no_node_id_is_free(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    leased = LeasedIds(engine, ttl_seconds=SHORT_TTL)
    generator = await leased.start()
    lease = leased.lease
    failed_claims: list[Exception] = []
    claim = lease.acquire

    async def watched_claim(attempts: int = 5) -> int:
        try:
            return await claim(attempts)
        except Exception as exc:
            failed_claims.append(exc)
            raise

    monkeypatch.setattr(lease, "acquire", watched_claim)
    try:
        # Every node id is taken by a live holder, including the one this process had.
        await execute(
            engine,
            """
            INSERT INTO node_leases (node_id, holder, expires_at)
            SELECT n, 'squatter', now() + interval '1 hour' FROM generate_series(1, :max) AS n
            """,
            max=MAX_NODE,
        )
        await execute(
            engine,
            "UPDATE node_leases SET holder = 'squatter', expires_at = now() + interval '1 hour'"
            " WHERE node_id = 0",
        )

        async def claim_failed() -> bool:
            return bool(failed_claims)

        await eventually(claim_failed, "a claim finds no free node id")
        assert isinstance(failed_claims[0], Unavailable)
        assert not lease.is_valid()
        with pytest.raises(Unavailable):
            generator.next_id()

        # A node id frees up: the heartbeat must still be alive to take it.
        await execute(engine, "DELETE FROM node_leases WHERE node_id = 700")

        async def recovered() -> bool:
            return lease.node_id == 700 and lease.is_valid()

        await eventually(recovered, "the heartbeat claims the freed node 700")
        assert decompose(generator.next_id()).node_id == 700
    finally:
        await leased.stop()


# Run in each child process: lease a node id, report it, generate on "go", stop on "stop".
CHILD = r"""
import asyncio
import sys

from sqlalchemy.ext.asyncio import create_async_engine

from fieldsync.kit.db.engine import async_url
from fieldsync.kit.ids.lease import LeasedIds
from fieldsync.kit.logging import configure_logging
from fieldsync.kit.settings import LogFormat


async def main(url: str, out: str, count: int) -> None:
    configure_logging(LogFormat.JSON)  # logs to stderr; stdout carries the protocol
    engine = create_async_engine(async_url(url))
    leased = LeasedIds(engine, ttl_seconds=30)
    try:
        generator = await leased.start()
        print("ready", leased.lease.node_id, flush=True)
        if sys.stdin.readline().strip() != "go":
            raise SystemExit("expected go")
        ids = [generator.next_id() for _ in range(count)]
        with open(out, "w") as file:
            file.write("\n".join(map(str, ids)))
        print("done", flush=True)
        if sys.stdin.readline().strip() != "stop":
            raise SystemExit("expected stop")
    finally:
        await leased.stop()
        await engine.dispose()


asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""

IDS_PER_PROCESS = 50_000


def read_text(path: Path) -> str:
    return path.read_text()


async def read_line(process: asyncio.subprocess.Process, prefix: str) -> str:
    """The first stdout line of `process` starting with `prefix`."""
    assert process.stdout is not None
    while True:
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=90)).decode()
        if not line:
            pytest.fail(f"child exited before saying {prefix!r} (exit code {process.returncode})")
        if line.startswith(prefix):
            return line.strip()


async def tell(process: asyncio.subprocess.Process, word: str) -> None:
    assert process.stdin is not None
    process.stdin.write(f"{word}\n".encode())
    await process.stdin.drain()


async def test_two_processes_never_share_a_node_id_or_an_id(
    engine: AsyncEngine, lease_database_url: str, tmp_path: Path
) -> None:
    outputs = [tmp_path / f"ids-{n}.txt" for n in range(2)]
    logs = [tmp_path / f"log-{n}.txt" for n in range(2)]
    children: list[asyncio.subprocess.Process] = []
    try:
        for output, log in zip(outputs, logs, strict=True):
            with log.open("wb") as stderr:
                children.append(
                    await asyncio.create_subprocess_exec(
                        sys.executable,
                        "-c",
                        CHILD,
                        lease_database_url,
                        str(output),
                        str(IDS_PER_PROCESS),
                        stdin=asyncio.subprocess.PIPE,
                        stdout=asyncio.subprocess.PIPE,
                        stderr=stderr,
                    )
                )
        # Both hold their leases at once before either generates an id...
        ready = [await read_line(child, "ready ") for child in children]
        node_ids = [int(line.split()[1]) for line in ready]
        assert node_ids[0] != node_ids[1]
        assert set((await holders(engine)).keys()) == set(node_ids)
        # ...then both generate together, and neither lets go before both are done.
        for child in children:
            await tell(child, "go")
        for child in children:
            await read_line(child, "done")
        for child in children:
            await tell(child, "stop")
        codes = [await asyncio.wait_for(child.wait(), timeout=60) for child in children]
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
                await child.wait()
    assert codes == [0, 0], list(map(read_text, logs))

    per_process = [[int(line) for line in text.split()] for text in map(read_text, outputs)]
    for ids, node_id in zip(per_process, node_ids, strict=True):
        assert len(ids) == IDS_PER_PROCESS
        assert all(a < b for a, b in itertools.pairwise(ids))
        assert {decompose(snowflake).node_id for snowflake in ids} == {node_id}
    everything = per_process[0] + per_process[1]
    assert len(set(everything)) == 2 * IDS_PER_PROCESS
    # Both released their node ids on the way out.
    assert await holders(engine) == {}
