"""Helpers for the buildings tests: creating, paging, reading CHANGES, pushing mutations."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select

from fieldsync.api.models import outbox
from fieldsync.contracts.changes import CHANGES_STREAM, Change, ChangeOp, unpack_changes
from fieldsync.contracts.collections import BUILDINGS as BUILDINGS_COLLECTION
from fieldsync.contracts.identity import Caller, Role
from fieldsync.contracts.mutations import AppliedMutations, ApplyMutations, Mutation, MutationResult
from fieldsync.kit.messaging import Bus, ConsumerSpec
from fieldsync.kit.messaging.jetstream import PullConsumer
from fieldsync.kit.runtime import Runtime
from tests.api.conftest import Account
from tests.packing import Published, assert_packed, changes_in

BUILDINGS = "/api/v1/buildings"


def building_url(building_id: str) -> str:
    return f"{BUILDINGS}/{building_id}"


def assignee_url(building_id: str, user_id: str) -> str:
    return f"{BUILDINGS}/{building_id}/assignees/{user_id}"


async def create_building(
    client: httpx.AsyncClient, account: Account, **fields: Any
) -> dict[str, Any]:
    """POST a building (name defaults to a unique one); returns the created body."""
    fields.setdefault("name", f"Building {secrets.token_hex(3)}")
    response = await client.post(BUILDINGS, json=fields, headers=account.auth)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def get_building(
    client: httpx.AsyncClient, account: Account, building_id: str
) -> dict[str, Any]:
    response = await client.get(building_url(building_id), headers=account.auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def walk(
    client: httpx.AsyncClient, account: Account, path: str, **params: Any
) -> list[dict[str, Any]]:
    """Every item of a paged list, following next_cursor (at most 50 pages)."""
    limit = params.get("limit")
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(50):
        query = dict(params)
        if cursor is not None:
            query["cursor"] = cursor
        response = await client.get(path, params=query, headers=account.auth)
        assert response.status_code == 200, response.text
        page = response.json()
        if limit is not None:
            assert len(page["items"]) <= limit
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items
        assert page["items"], "a page with a next_cursor must not be empty"
    raise AssertionError("more than 50 pages: the cursor does not advance")


async def listed_ids(client: httpx.AsyncClient, account: Account, **params: Any) -> list[str]:
    """Ids of every building `account` sees in the list (all pages)."""
    return [item["id"] for item in await walk(client, account, BUILDINGS, **params)]


class ChangeFeed:
    """The Changes of one organization in CHANGES, read through a durable pull consumer."""

    def __init__(self, consumer: PullConsumer) -> None:
        self._consumer = consumer
        self.changes: list[Change] = []
        # The subject each change came on.
        self.subjects: list[str] = []
        # The messages as stored (a message packs several changes).
        self.messages: list[Published] = []

    async def _fetch(self) -> int:
        """One fetch (waits at most half a second); how many messages it brought."""
        messages = await self._consumer.fetch(100, timeout=0.5)
        for message in messages:
            changes = [Change.model_validate(item) for item in unpack_changes(message.data)]
            self.changes += changes
            self.subjects += [message.subject] * len(changes)
            self.messages.append((message.subject, message.data, message.headers["Nats-Msg-Id"]))
            await message.ack()
        return len(messages)

    def assert_carried(self, rows: list[Any]) -> None:
        """The messages read carry exactly these outbox rows, packed as the relay does."""
        assert_packed(
            self.messages, [(row.id, row.subject, bytes(row.payload)) for row in rows], "api"
        )

    async def wait_for(
        self, condition: Callable[[list[Change]], bool], *, timeout: float = 10.0
    ) -> list[Change]:
        """Fetch until `condition(changes so far)` holds; TimeoutError after `timeout`."""
        async with asyncio.timeout(timeout):
            while not condition(self.changes):
                await self._fetch()
        return self.changes

    async def wait_for_count(
        self, collection: str, count: int, *, timeout: float = 10.0
    ) -> list[Change]:
        """The first `count` Changes of `collection`, once that many have arrived."""

        def enough(changes: list[Change]) -> bool:
            return sum(change.collection == collection for change in changes) >= count

        await self.wait_for(enough, timeout=timeout)
        return [change for change in self.changes if change.collection == collection]

    async def drain(self, *, timeout: float = 10.0) -> list[Change]:
        """Fetch until a fetch comes back empty.

        Only meaningful for messages known to be stored already (e.g. another feed
        has read them): then an empty fetch means none of them is for this consumer.
        """
        async with asyncio.timeout(timeout):
            while await self._fetch():
                pass
        return self.changes


OpenFeed = Callable[[str], Awaitable[ChangeFeed]]


@pytest.fixture
async def change_feed(runtime: Runtime) -> AsyncIterator[OpenFeed]:
    """Open a feed of one organization's Changes (a fresh durable consumer each time)."""
    consumers: list[PullConsumer] = []

    async def open_feed(organization_id: str) -> ChangeFeed:
        jetstream = runtime.bus.jetstream
        # The relay declares the stream when it starts; declaring it here too (the same
        # spec) means the consumer never races the relay's first run.
        await jetstream.ensure_stream(CHANGES_STREAM)
        spec = ConsumerSpec(
            stream=CHANGES_STREAM.name,
            durable=f"buildings_test_{secrets.token_hex(6)}",
            filter_subjects=[f"changes.{organization_id}.>"],
        )
        await jetstream.ensure_consumer(spec)
        consumer = await jetstream.pull(spec)
        consumers.append(consumer)
        return ChangeFeed(consumer)

    yield open_feed
    for consumer in consumers:
        await consumer.close()


async def outbox_rows(runtime: Runtime, organization_id: str) -> list[Any]:
    """The api outbox rows of one organization's changes, in id order."""
    async with runtime.databases["api"].engine.connect() as connection:
        result = await connection.execute(
            select(outbox.c.id, outbox.c.subject, outbox.c.payload, outbox.c.published_at)
            .where(outbox.c.subject.like(f"changes.{organization_id}.%"))
            .order_by(outbox.c.id)
        )
        return list(result.all())


async def outbox_changes(runtime: Runtime, organization_id: str) -> list[dict[str, Any]]:
    """The changes the api outbox holds for one organization, as JSON, in the order
    written (a row holds one change, or a transaction's changes of one subject)."""
    rows = await outbox_rows(runtime, organization_id)
    return changes_in([(row.id, row.subject, bytes(row.payload)) for row in rows])


async def wait_until_published(
    runtime: Runtime, organization_id: str, *, count: int, timeout: float = 10.0
) -> list[Any]:
    """Poll the outbox until rows holding `count` changes of the organization exist, all
    published; the rows."""
    async with asyncio.timeout(timeout):
        while True:
            rows = await outbox_rows(runtime, organization_id)
            held = len(changes_in([(row.id, row.subject, bytes(row.payload)) for row in rows]))
            if held >= count and all(row.published_at is not None for row in rows):
                return rows
            await asyncio.sleep(0.05)


def payload_of(row: Any) -> dict[str, Any]:
    """The Change of an outbox row that holds one, as JSON."""
    decoded: dict[str, Any] = orjson.loads(bytes(row.payload))
    assert isinstance(decoded, dict), "this row packs several changes"
    return decoded


# --- pushed mutations (the sync service's requests to `api.buildings.apply`) ----------

PHONE = "phone-1"


def caller_of(account: Account) -> Caller:
    """The Caller the sync service sends for `account` (from its access token's claims)."""
    claims = account.claims
    return Caller(
        user_id=uuid.UUID(claims["sub"]),
        organization_id=uuid.UUID(claims["org"]),
        role=Role(claims["role"]),
        session_id=uuid.UUID(claims["sid"]),
    )


def upsert(
    mutation_id: int,
    building_id: uuid.UUID | str,
    data: dict[str, Any] | None,
    *,
    base_version: int | None = None,
) -> Mutation:
    """A building upsert: a create without `base_version`, else a partial update."""
    return Mutation(
        mutation_id=mutation_id,
        collection=BUILDINGS_COLLECTION.name,
        id=uuid.UUID(str(building_id)),
        op=ChangeOp.UPSERT,
        data=data,
        base_version=base_version,
    )


def delete(
    mutation_id: int, building_id: uuid.UUID | str, *, base_version: int | None = None
) -> Mutation:
    """A building delete (compare-and-set when `base_version` is given)."""
    return Mutation(
        mutation_id=mutation_id,
        collection=BUILDINGS_COLLECTION.name,
        id=uuid.UUID(str(building_id)),
        op=ChangeOp.DELETE,
        base_version=base_version,
    )


def apply_request(
    account: Account,
    mutations: list[Mutation],
    *,
    client_id: str = PHONE,
    building_scope: list[uuid.UUID] | None = None,
) -> ApplyMutations:
    """The request the sync service sends for `account`'s pushed building mutations."""
    return ApplyMutations(
        caller=caller_of(account),
        building_scope=building_scope,
        client_id=client_id,
        mutations=mutations,
    )


Push = Callable[..., Awaitable[list[MutationResult]]]


@pytest.fixture
def push(runtime: Runtime, bus: Bus) -> Push:
    """Send `account`'s mutations to the api over NATS, as sync does; the results."""
    assert runtime.services  # the api runtime serves `api.buildings.apply`

    async def send(
        account: Account,
        *mutations: Mutation,
        client_id: str = PHONE,
        building_scope: list[uuid.UUID] | None = None,
    ) -> list[MutationResult]:
        request = apply_request(
            account, list(mutations), client_id=client_id, building_scope=building_scope
        )
        reply = await bus.request(BUILDINGS_COLLECTION.apply_subject, request, AppliedMutations)
        return reply.results

    return send
