"""Node ids leased from PostgreSQL, so two live processes never share one.

Each service database has a `node_leases` table. A process claims the lowest free
(or expired) node id, renews its lease on a heartbeat, and releases it on shutdown.
The process keeps a local deadline computed from the moment it *sent* each renewal,
which is never later than the expiry the server recorded; once that deadline passes
without a successful renewal, the process stops issuing ids (another process may
claim the node id after the server-side expiry).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable

from sqlalchemy import Column, DateTime, MetaData, SmallInteger, Table, Text, text
from sqlalchemy.ext.asyncio import AsyncEngine

from fieldsync.kit.cancellation import stop_if_cancelled
from fieldsync.kit.errors import Unavailable
from fieldsync.kit.ids.snowflake import MAX_NODE, SnowflakeGenerator
from fieldsync.kit.logging import get_logger

log = get_logger(__name__)


def node_lease_table(metadata: MetaData) -> Table:
    """Declare the `node_leases` table in a service's metadata."""
    return Table(
        "node_leases",
        metadata,
        Column("node_id", SmallInteger, primary_key=True, autoincrement=False),
        Column("holder", Text, nullable=False),
        Column("expires_at", DateTime(timezone=True), nullable=False),
    )


# Claims in one database take turns (a transaction-scoped advisory lock), so concurrent
# claimants never race for the same lowest free id: without it, N processes starting
# together each lose to one another up to N-1 times and can run out of attempts while
# hundreds of node ids are free. Renewals and releases do not take the lock.
_CLAIM_LOCK = text("SELECT pg_advisory_xact_lock(:key)")
_CLAIM_LOCK_KEY = int.from_bytes(b"fs-nodes", "big")
_CLAIM = text(
    """
    INSERT INTO node_leases (node_id, holder, expires_at)
    SELECT candidate, :holder, now() + make_interval(secs => :ttl)
    FROM generate_series(0, :max_node) AS candidate
    WHERE NOT EXISTS (
        SELECT 1 FROM node_leases held
        WHERE held.node_id = candidate AND held.expires_at > now()
    )
    ORDER BY candidate
    LIMIT 1
    ON CONFLICT (node_id) DO UPDATE
        SET holder = excluded.holder, expires_at = excluded.expires_at
        WHERE node_leases.expires_at <= now()
    RETURNING node_id
    """
)
_RENEW = text(
    """
    UPDATE node_leases SET expires_at = now() + make_interval(secs => :ttl)
    WHERE node_id = :node_id AND holder = :holder AND expires_at > now()
    RETURNING node_id
    """
)
_RELEASE = text("DELETE FROM node_leases WHERE node_id = :node_id AND holder = :holder")


class NodeLease:
    """An exclusive, expiring claim on one node id in one database."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        ttl_seconds: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._ttl = ttl_seconds
        self._monotonic = monotonic
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.node_id: int | None = None
        self._deadline = 0.0

    def is_valid(self) -> bool:
        """True while the lease is certainly still ours."""
        return self.node_id is not None and self._monotonic() < self._deadline

    async def acquire(self, attempts: int = 5) -> int:
        """Claim a free node id; concurrent claimants retry on the next free one."""
        for _ in range(attempts):
            sent = self._monotonic()
            async with self._engine.begin() as connection:
                await connection.execute(_CLAIM_LOCK, {"key": _CLAIM_LOCK_KEY})
                row = (
                    await connection.execute(
                        _CLAIM, {"holder": self.holder, "ttl": self._ttl, "max_node": MAX_NODE}
                    )
                ).first()
            if row is not None:
                self.node_id = int(row[0])
                self._deadline = sent + self._ttl
                log.info("node lease acquired", node_id=self.node_id, holder=self.holder)
                return self.node_id
            # Every node id is taken (or, despite the lock, a race was lost): look again.
            await asyncio.sleep(0.01)
        raise Unavailable(f"no free node id among {MAX_NODE + 1}: too many live processes")

    async def renew(self) -> None:
        """Extend the lease; raises Unavailable when it was lost meanwhile."""
        if self.node_id is None:
            raise Unavailable("node lease was never acquired")
        sent = self._monotonic()
        async with self._engine.begin() as connection:
            row = (
                await connection.execute(
                    _RENEW, {"holder": self.holder, "ttl": self._ttl, "node_id": self.node_id}
                )
            ).first()
        if row is None:
            self._deadline = 0.0
            raise Unavailable(f"node lease {self.node_id} expired and may be held elsewhere")
        self._deadline = sent + self._ttl

    async def release(self) -> None:
        """Give the node id back so the next process can take it at once."""
        if self.node_id is None:
            return
        async with self._engine.begin() as connection:
            await connection.execute(_RELEASE, {"holder": self.holder, "node_id": self.node_id})
        self._deadline = 0.0

    async def heartbeat(self) -> None:
        """Renew every third of the lease's lifetime until cancelled; re-acquire if lost.

        Nothing but cancellation ends the loop: a failed claim (every node id taken, the
        database unreachable) is retried on the next beat, since the renewal of the lost
        node id fails again and leads back here.
        """
        while True:
            stop_if_cancelled()
            await asyncio.sleep(self._ttl / 3)
            try:
                await self.renew()
            except Unavailable:
                log.warning("node lease lost; claiming a new node id", node_id=self.node_id)
                try:
                    await self.acquire()
                except Exception as exc:
                    stop_if_cancelled(exc)
                    log.warning("claiming a new node id failed", error=str(exc))
            except Exception as exc:  # database hiccup: keep trying until the deadline
                stop_if_cancelled(exc)
                log.warning("node lease renewal failed", error=str(exc))


class LeasedIds:
    """A snowflake generator bound to a node lease, with its heartbeat task."""

    def __init__(self, engine: AsyncEngine, *, ttl_seconds: float) -> None:
        self.lease = NodeLease(engine, ttl_seconds=ttl_seconds)
        self._generator: SnowflakeGenerator | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> SnowflakeGenerator:
        """Acquire a node id and start renewing it."""
        await self.lease.acquire()
        self._generator = _LeaseFollowingGenerator(self.lease)
        self._task = asyncio.create_task(self.lease.heartbeat(), name="node-lease-heartbeat")
        return self._generator

    @property
    def generator(self) -> SnowflakeGenerator:
        """The generator; only after `start()`."""
        if self._generator is None:
            raise RuntimeError("LeasedIds.start() was not awaited")
        return self._generator

    async def stop(self) -> None:
        """Stop renewing and release the node id."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.lease.release()


class _LeaseFollowingGenerator(SnowflakeGenerator):
    """A generator that follows its lease's current node id (it changes only after a loss)."""

    def __init__(self, lease: NodeLease) -> None:
        assert lease.node_id is not None
        super().__init__(lease.node_id, is_valid=lease.is_valid)
        self._lease = lease

    def next_id(self) -> int:
        if self._lease.node_id is not None and self._lease.node_id != self.node_id:
            self.node_id = self._lease.node_id
        return super().next_id()
