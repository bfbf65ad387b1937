"""fieldsync refuses NATS servers that could lose acknowledged messages."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from fieldsync.kit.embedded.nats import EmbeddedNats, NatsEndpoints, free_port
from fieldsync.kit.errors import Unavailable
from fieldsync.kit.messaging import Bus
from fieldsync.kit.messaging.safety import UnsafeNats, fetch_sync_always, verify_nats_durability


def started(
    data_dir: Path, *, jetstream: bool = True, sync_always: bool = True
) -> Iterator[NatsEndpoints]:
    server = EmbeddedNats(data_dir, jetstream=jetstream, sync_always=sync_always)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def unsynced_nats(tmp_path: Path) -> Iterator[NatsEndpoints]:
    """JetStream on, but flushed to disk on an interval rather than before each ack."""
    yield from started(tmp_path / "unsynced", sync_always=False)


@pytest.fixture
def plain_nats(tmp_path: Path) -> Iterator[NatsEndpoints]:
    """Core NATS only: no JetStream at all."""
    yield from started(tmp_path / "plain", jetstream=False)


async def connect(endpoints: NatsEndpoints) -> Bus:
    return await Bus.connect(endpoints.url, name=f"safety-{secrets.token_hex(4)}")


@pytest.fixture
async def unsynced_bus(unsynced_nats: NatsEndpoints) -> AsyncIterator[Bus]:
    connected = await connect(unsynced_nats)
    yield connected
    await connected.close()


@pytest.fixture
async def plain_bus(plain_nats: NatsEndpoints) -> AsyncIterator[Bus]:
    connected = await connect(plain_nats)
    yield connected
    await connected.close()


async def test_the_test_server_is_durable(bus: Bus, nats_server: NatsEndpoints) -> None:
    assert await fetch_sync_always(nats_server.monitor_url) is True
    await verify_nats_durability(bus.jetstream, monitor_url=nats_server.monitor_url, unsafe=False)
    # A trailing slash on the configured address is fine.
    await verify_nats_durability(
        bus.jetstream, monitor_url=nats_server.monitor_url + "/", unsafe=False
    )


async def test_server_without_sync_always_is_refused(
    unsynced_bus: Bus, unsynced_nats: NatsEndpoints
) -> None:
    assert await fetch_sync_always(unsynced_nats.monitor_url) is False
    with pytest.raises(UnsafeNats) as raised:
        await verify_nats_durability(
            unsynced_bus.jetstream, monitor_url=unsynced_nats.monitor_url, unsafe=False
        )
    message = str(raised.value)
    assert "sync_interval" in message
    assert "FIELDSYNC_UNSAFE_NATS" in message


async def test_server_without_sync_always_is_accepted_when_unsafe(
    unsynced_bus: Bus, unsynced_nats: NatsEndpoints
) -> None:
    await verify_nats_durability(
        unsynced_bus.jetstream, monitor_url=unsynced_nats.monitor_url, unsafe=True
    )


async def test_unverifiable_durability_is_refused(bus: Bus) -> None:
    with pytest.raises(UnsafeNats) as raised:
        await verify_nats_durability(bus.jetstream, monitor_url=None, unsafe=False)
    message = str(raised.value)
    assert "FIELDSYNC_NATS_MONITOR_URL" in message
    assert "FIELDSYNC_UNSAFE_NATS" in message


async def test_unverifiable_durability_is_accepted_when_unsafe(bus: Bus) -> None:
    await verify_nats_durability(bus.jetstream, monitor_url=None, unsafe=True)


async def test_server_without_jetstream_is_refused(
    plain_bus: Bus, plain_nats: NatsEndpoints
) -> None:
    with pytest.raises(UnsafeNats) as raised:
        await verify_nats_durability(
            plain_bus.jetstream, monitor_url=plain_nats.monitor_url, unsafe=False
        )
    message = str(raised.value)
    assert "JetStream is not enabled" in message
    assert "FIELDSYNC_UNSAFE_NATS" in message
    with pytest.raises(Unavailable, match="JetStream is not enabled"):
        await plain_bus.jetstream.verify_enabled()


async def test_server_without_jetstream_is_accepted_when_unsafe(
    plain_bus: Bus, plain_nats: NatsEndpoints
) -> None:
    await verify_nats_durability(
        plain_bus.jetstream, monitor_url=plain_nats.monitor_url, unsafe=True
    )


async def test_unreachable_monitor_is_unavailable(bus: Bus) -> None:
    # Nothing listens on a port that was just free; the check must not pass silently.
    monitor_url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(Unavailable) as raised:
        await verify_nats_durability(bus.jetstream, monitor_url=monitor_url, unsafe=False)
    assert monitor_url in raised.value.detail
