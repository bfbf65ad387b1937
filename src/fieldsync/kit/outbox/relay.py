"""Publishing the outbox: one active relay per service, replicas on standby."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from fieldsync.kit.cancellation import stop_if_cancelled
from fieldsync.kit.db.engine import Database
from fieldsync.kit.logging import get_logger
from fieldsync.kit.messaging.jetstream import JetStream
from fieldsync.kit.outbox.packing import Pack, by_subject
from fieldsync.kit.outbox.table import notify_channel

log = get_logger(__name__)


def message_id(relay: str, row_id: int) -> str:
    """The `Nats-Msg-Id` of an outbox row: the relay's name, then the row id.

    Row ids are snowflakes unique within one service's database only (node ids are
    leased per database), and several services publish into one stream: a bare id
    of one service could equal another's, and JetStream would drop it as a duplicate.
    """
    return f"{relay}:{row_id}"


def packed_message_id(relay: str, row_ids: Sequence[int]) -> str:
    """The `Nats-Msg-Id` of a message packing several rows: the first row and a digest.

    Only the same rows packed again get the same id, so JetStream drops a republished
    pack and never a pack holding a row the stored one lacked (after a crash between
    publishing and marking, rows committed meanwhile can pack with republished ones:
    those are stored again, as copies the stream's consumers drop).
    """
    if len(row_ids) == 1:
        return message_id(relay, row_ids[0])
    digest = hashlib.blake2b(b"".join(i.to_bytes(8, "big") for i in row_ids), digest_size=8)
    return f"{relay}:{row_ids[0]}+{len(row_ids) - 1}:{digest.hexdigest()}"


# One packed message stays well under NATS's default max_payload (1 MiB).
PACK_MAX_BYTES = 256 * 1024


@dataclass
class RowPack:
    """Rows of one subject going out as one message."""

    subject: str
    row_ids: list[int] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)


def packs(rows: Sequence[tuple[int, str, bytes]], max_bytes: int = PACK_MAX_BYTES) -> list[RowPack]:
    """`rows` (id, subject, payload) packed by subject, in the order of their first rows.

    Each subject's rows keep their order (one record's changes share a subject, so they
    keep theirs); a pack is cut before it would pass `max_bytes`. The same rows always
    pack the same way.
    """
    groups = by_subject([(subject, payload) for _, subject, payload in rows], max_bytes)
    return [
        RowPack(
            rows[group[0]][1],
            [rows[index][0] for index in group],
            [rows[index][2] for index in group],
        )
        for group in groups
    ]


# Outbox rows a relay reads, publishes and marks at a time. A burst of default workflows
# is six rows a building: 20,000 new buildings took 480 batches of 256 (a select, a
# publish and an update each); batches of 1,024 made creates and sequential edits about
# 5% faster in alternating runs. Published in atomic batches of at most
# `MAX_BATCH_MESSAGES` messages, packed by subject.
RELAY_BATCH = 1024
# And at most about this many bytes of payload: an outbox row may pack up to
# `packing.ROW_MAX_BYTES` of one transaction's messages.
RELAY_BATCH_BYTES = 2 * 1024 * 1024

# How long a relay woken by a commit waits before it reads the outbox. The commit's
# own request then answers before the relay's reading and publishing compete with it
# for the process (a sequential push of 500 edits got 6-10% faster), and commits of a
# burst go out together. Change -> poke latency grows by as much.
LINGER_SECONDS = 0.005

# How often a leading relay looks for published rows past the retention, and how many
# it deletes a statement.
PRUNE_INTERVAL_SECONDS = 600.0
PRUNE_SLICE = 5000
# Slices a leading relay deletes between two batches it publishes.
PRUNE_SLICES_PER_TURN = 4


def lock_key(name: str) -> int:
    """A stable 63-bit advisory-lock key for a relay name."""
    return int.from_bytes(hashlib.sha256(f"outbox:{name}".encode()).digest()[:8], "big") >> 1


def _pending_statement(table_name: str) -> str:
    return (
        "SELECT id, subject, payload FROM (SELECT id, subject, payload,"  # noqa: S608 - our table
        " sum(octet_length(payload)) OVER (ORDER BY id) - octet_length(payload) AS before"
        f' FROM "{table_name}" WHERE published_at IS NULL ORDER BY id LIMIT $1) AS pending'
        " WHERE before < $2 ORDER BY id"
    )


class OutboxRelay:
    """Publishes a service's outbox to JetStream while it holds the relay lock.

    Given `pack`, the rows of one subject in a batch go out as one message whose data
    is `pack(payloads)` (see `packs`); consumers must then read packed messages. Rows
    appended with `append_packed` may be packs already: `pack` must take those too.

    `after_publish` is a test seam: it runs after a batch is published and before it
    is marked, which is where a crash would leave published-but-unmarked rows.
    """

    def __init__(
        self,
        database: Database,
        jetstream: JetStream,
        table: Table,
        *,
        name: str,
        batch_size: int = RELAY_BATCH,
        batch_bytes: int = RELAY_BATCH_BYTES,
        idle_seconds: float = 1.0,
        standby_seconds: float = 2.0,
        stream: str | None = None,
        pack: Pack | None = None,
        retention_seconds: float | None = None,
        linger_seconds: float = LINGER_SECONDS,
        after_publish: Callable[[list[int]], Awaitable[None]] | None = None,
    ) -> None:
        self._database = database
        self._jetstream = jetstream
        self._table = table
        self.name = name
        self._key = lock_key(name)
        self._batch_size = batch_size
        self._batch_bytes = batch_bytes
        self._drained = True
        self._idle = idle_seconds
        self._standby = standby_seconds
        self._after_publish = after_publish
        # The stream the table's subjects go to, when it may take atomic batches.
        self._stream = stream
        self._pack = pack
        # Published rows older than this are deleted while leading (None: kept).
        self._retention = retention_seconds
        self._linger = linger_seconds
        # None: not yet pruned, so the first chance prunes (time.monotonic() starts near
        # zero at boot: a start of 0.0 put the first prune off by up to ten minutes).
        self._pruned_at: float | None = None
        self.is_leader = False
        self.published = 0

    async def run(self) -> None:
        """Lead when the lock is free, stand by otherwise; until cancelled."""
        while True:
            stop_if_cancelled()
            try:
                async with self._database.engine.connect() as lock_connection:
                    if await self._try_lead(lock_connection):
                        try:
                            await self._lead()
                        finally:
                            self.is_leader = False
                            # The connection goes back to the pool: it must not keep the lock.
                            await asyncio.shield(self._unlock(lock_connection))
            except Exception as exc:  # database or NATS trouble: step down, try again
                stop_if_cancelled(exc)
                log.warning("outbox relay failed; retrying", relay=self.name, error=str(exc))
            await asyncio.sleep(self._standby)

    async def _try_lead(self, connection: AsyncConnection) -> bool:
        # A session-level lock: held as long as this connection lives, released by
        # PostgreSQL if the process dies, so a standby replica takes over.
        acquired = bool(await connection.scalar(select(func.pg_try_advisory_lock(self._key))))
        await connection.commit()
        if acquired:
            self.is_leader = True
            log.info("outbox relay leading", relay=self.name)
        return acquired

    async def _unlock(self, connection: AsyncConnection) -> None:
        try:
            await connection.scalar(select(func.pg_advisory_unlock(self._key)))
            await connection.commit()
        except Exception:  # a broken connection: PostgreSQL releases the lock with it
            await connection.invalidate()

    async def _lead(self) -> None:
        # Committed appends NOTIFY the table's channel: the relay wakes at once instead
        # of polling. The timeout is only a backstop for a notification lost with a
        # dropped listening connection.
        channel = notify_channel(self._table)
        wake = asyncio.Event()

        def on_notify(*_: object) -> None:
            wake.set()

        pool = await self._database.raw_pool()
        async with pool.acquire() as listening:
            await listening.add_listener(channel, on_notify)
            try:
                while True:
                    stop_if_cancelled()
                    wake.clear()
                    await self.publish_pending()
                    await self._prune_when_due()
                    if self._drained:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(wake.wait(), self._idle)
                        # Woken by a commit: let the transaction that committed answer
                        # its caller first, and the rest of a burst commit.
                        await asyncio.sleep(self._linger)
            finally:
                with contextlib.suppress(Exception):
                    await listening.remove_listener(channel, on_notify)

    async def publish_pending(self) -> int:
        """Publish one batch of unpublished rows in id order; how many were published."""
        # Raw asyncpg, two statements without a transaction: the ORM's BEGIN/ROLLBACK
        # and BEGIN/COMMIT around them cost four more round trips per batch, and the
        # relay runs once per committed change when traffic is light.
        name = self._table.name
        async with self._database.raw_connection() as connection:
            # Rows up to the byte cap (the first row always): the running sum is over
            # the limited rows only, in the order the index gives them.
            rows = await connection.fetch(
                _pending_statement(name), self._batch_size, self._batch_bytes
            )
            size = sum(len(row["payload"]) for row in rows)
            # A full batch, or one the byte cap may have cut: more may be waiting.
            self._drained = len(rows) < self._batch_size and size < self._batch_bytes
            if not rows:
                return 0
            # In this (id) order, which keeps every record's changes in the order they
            # were committed: one atomic batch when the stream takes them, else pipelined
            # on one connection. A failure publishes the batch again: the same rows under
            # the same ids (a pack that gained rows meanwhile gets a new one).
            messages = self._messages(
                [(row["id"], row["subject"], bytes(row["payload"])) for row in rows]
            )
            if self._stream is None:
                await self._jetstream.publish_many(messages)
            else:
                await self._jetstream.publish_batch(self._stream, messages)
            ids = [row["id"] for row in rows]
            if self._after_publish is not None:
                await self._after_publish(ids)
            await connection.execute(
                f'UPDATE "{name}" SET published_at = now() '  # noqa: S608 - our table
                "WHERE id = ANY($1::bigint[])",
                ids,
            )
        self.published += len(rows)
        return len(rows)

    async def _prune_when_due(self) -> None:
        if self._retention is None:
            return
        now = time.monotonic()
        if self._pruned_at is not None and now - self._pruned_at < min(
            PRUNE_INTERVAL_SECONDS, self._retention / 2
        ):
            return
        self._pruned_at = now
        pruned = await self.prune_published(self._retention, max_slices=PRUNE_SLICES_PER_TURN)
        if pruned:
            log.info("outbox pruned", relay=self.name, rows=pruned)
        if pruned >= PRUNE_SLICE * PRUNE_SLICES_PER_TURN:
            # A backlog (a first prune after a long pause): go on after the next batch
            # is published, not all of it before.
            self._pruned_at = None

    async def prune_published(
        self, older_than_seconds: float, *, max_slices: int | None = None
    ) -> int:
        """Delete rows published more than `older_than_seconds` ago, `PRUNE_SLICE` rows a
        statement (short locks, short transactions), at most `max_slices` statements
        (None: until none are left); how many went."""
        name = self._table.name
        pruned = 0
        slices = 0
        async with self._database.raw_connection() as connection:
            while max_slices is None or slices < max_slices:
                slices += 1
                deleted = await connection.fetchval(
                    f'WITH gone AS (DELETE FROM "{name}" WHERE id IN ('  # noqa: S608 - our table
                    f'SELECT id FROM "{name}" WHERE published_at < now() - make_interval('
                    "secs => $1) ORDER BY id LIMIT $2) RETURNING 1) SELECT count(*) FROM gone",
                    older_than_seconds,
                    PRUNE_SLICE,
                )
                pruned += int(deleted)
                if deleted < PRUNE_SLICE:
                    break
        return pruned

    def _messages(self, rows: list[tuple[int, str, bytes]]) -> list[tuple[str, bytes, str]]:
        """(subject, data, message id) to publish for `rows` (id, subject, payload)."""
        if self._pack is None:
            return [(subject, payload, message_id(self.name, i)) for i, subject, payload in rows]
        return [
            (pack.subject, self._pack(pack.payloads), packed_message_id(self.name, pack.row_ids))
            for pack in packs(rows)
        ]
