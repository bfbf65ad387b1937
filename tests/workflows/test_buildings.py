"""The buildings consumer: building changes on CHANGES keep each building's workflows right."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import nats
import nats.js.errors
import pytest
from nats.js import JetStreamContext

from fieldsync.contracts import workflows as contract
from fieldsync.contracts.changes import (
    CHANGES_STREAM,
    Change,
    ChangeOp,
    change_subject,
    pack_changes,
    unpack_changes,
)
from fieldsync.contracts.workflows import WorkflowStatus
from fieldsync.kit.db.engine import Database
from fieldsync.kit.embedded.nats import NatsEndpoints
from fieldsync.kit.errors import NotFound
from fieldsync.kit.ids import SnowflakeGenerator
from fieldsync.kit.messaging import Bus
from fieldsync.kit.outbox.packing import ROW_MAX_BYTES
from fieldsync.kit.runtime import Runtime
from fieldsync.workflows.buildings.consumer import (
    BUILDINGS_COLLECTION,
    BUILDINGS_CONSUMER,
    handle,
    handle_batch,
    nak_delay,
    slices,
)
from fieldsync.workflows.buildings.known import BuildingsWithDefaults
from fieldsync.workflows.state import WorkflowsState
from fieldsync.workflows.templates.service import DEFAULT_STEPS, DEFAULT_TEMPLATE_NAME
from tests.workflows.support import Client, Org, eventually, rows


@pytest.fixture
async def admin(nats_server: NatsEndpoints) -> AsyncIterator[JetStreamContext]:
    """A plain nats-py JetStream context, to read the consumer's progress."""
    client = await nats.connect(nats_server.url, name="workflows-test-admin")
    yield client.jetstream()
    await client.close()


@dataclass
class Buildings:
    """Publishes building changes of one organization the way the api's relay does."""

    bus: Bus
    admin: JetStreamContext
    org: Org = field(default_factory=Org)
    versions: dict[uuid.UUID, int] = field(default_factory=dict)

    def change(self, building_id: uuid.UUID, op: ChangeOp) -> Change:
        version = self.versions.get(building_id, 0) + 1
        self.versions[building_id] = version
        return Change(
            collection=BUILDINGS_COLLECTION,
            id=building_id,
            organization_id=self.org.id,
            op=op,
            data=None if op is ChangeOp.DELETE else {"id": str(building_id), "name": "Depot"},
            version=version,
            building_id=building_id,
            occurred_at=datetime.now(UTC),
        )

    async def publish(self, payload: Change | bytes, subject: str | None = None) -> int:
        """Store a message in CHANGES (a fresh message id each time); its stream sequence."""
        acknowledged = await self.bus.jetstream.publish(
            subject or change_subject(self.org.id, BUILDINGS_COLLECTION),
            payload.model_dump_json().encode() if isinstance(payload, Change) else payload,
            message_id=secrets.token_hex(8),
        )
        return acknowledged.sequence

    async def handled(self, sequence: int) -> None:
        """Wait until the consumer has settled every message up to `sequence`."""

        async def settled() -> bool:
            info = await self.admin.consumer_info(CHANGES_STREAM.name, BUILDINGS_CONSUMER.durable)
            return info.ack_floor.stream_seq >= sequence and info.num_ack_pending == 0

        await eventually(settled, timeout=30.0)

    async def caught_up(self) -> None:
        """Wait until the consumer exists and has settled everything in the stream so far
        (in a whole-suite run, the api's tests publish building changes too)."""

        async def idle() -> bool:
            try:
                info = await self.admin.consumer_info(
                    CHANGES_STREAM.name, BUILDINGS_CONSUMER.durable
                )
            except nats.js.errors.NotFoundError:
                return False
            return info.num_pending == 0 and info.num_ack_pending == 0

        await eventually(idle, timeout=60.0)


@pytest.fixture
async def buildings(bus: Bus, admin: JetStreamContext, workflows_runtime: Runtime) -> Buildings:
    await bus.jetstream.ensure_stream(CHANGES_STREAM)
    buildings = Buildings(bus, admin)
    await buildings.caught_up()
    return buildings


async def test_a_new_building_gets_exactly_one_default_workflow(
    buildings: Buildings, workflows: Client
) -> None:
    org, building = buildings.org, uuid.uuid4()
    upsert = buildings.change(building, ChangeOp.UPSERT)
    await buildings.handled(await buildings.publish(upsert))

    listed = (await workflows.list(org.manager, building_id=building)).items
    assert len(listed) == 1
    workflow = listed[0]
    assert (workflow.name, workflow.status) == (DEFAULT_TEMPLATE_NAME, WorkflowStatus.OPEN)
    steps = await workflows.steps(org.manager, workflow.id)
    assert [(step.title, step.required) for step in steps] == list(DEFAULT_STEPS)

    # The same change again (a redelivery), and a later edit of the building: still one.
    await buildings.publish(upsert)
    await buildings.handled(await buildings.publish(buildings.change(building, ChangeOp.UPSERT)))
    assert (await workflows.list(org.manager, building_id=building)).items == [workflow]

    # The api's own create of the default workflow finds the same one.
    again = await workflows.create_reply(
        org.manager, building, key=contract.default_workflow_key(building)
    )
    assert (again.workflow, again.created) == (workflow, False)


async def test_the_consumer_and_the_api_racing_make_one_workflow(
    buildings: Buildings, workflows: Client
) -> None:
    org, building = buildings.org, uuid.uuid4()
    created = await workflows.create(
        org.manager, building, key=contract.default_workflow_key(building)
    )
    await buildings.handled(await buildings.publish(buildings.change(building, ChangeOp.UPSERT)))
    assert (await workflows.list(org.manager, building_id=building)).items == [created]


async def test_a_deleted_building_has_its_workflows_cancelled_and_deleted(
    buildings: Buildings, workflows: Client, database: Database
) -> None:
    org, building, neighbour = buildings.org, uuid.uuid4(), uuid.uuid4()
    await buildings.publish(buildings.change(neighbour, ChangeOp.UPSERT))
    await buildings.handled(await buildings.publish(buildings.change(building, ChangeOp.UPSERT)))
    default = (await workflows.list(org.manager, building_id=building)).items[0]
    started = await workflows.transition(
        org.manager, await workflows.create(org.manager, building), WorkflowStatus.IN_PROGRESS
    )
    finished = await workflows.create(org.manager, building)
    for step in await workflows.steps(org.manager, finished.id):
        await workflows.update_step(org.manager, step, done=True)
    finished = await workflows.transition(org.manager, finished, WorkflowStatus.IN_PROGRESS)
    finished = await workflows.transition(org.manager, finished, WorkflowStatus.DONE)

    await buildings.handled(await buildings.publish(buildings.change(building, ChangeOp.DELETE)))

    assert (await workflows.list(org.manager, building_id=building)).items == []
    stored = await rows(
        database,
        "SELECT uuid, status, deleted_at IS NOT NULL FROM workflows"
        " WHERE organization_id = :org AND building_id = :building",
        org=org.id,
        building=building,
    )
    assert sorted(stored) == sorted(
        [
            (default.id, "cancelled", True),
            (started.id, "cancelled", True),
            (finished.id, "done", True),  # finished work stays finished, but goes away
        ]
    )
    live_steps = await rows(
        database,
        "SELECT count(*) FROM workflow_steps s JOIN workflows w ON w.id = s.workflow_id"
        " WHERE w.building_id = :building AND s.deleted_at IS NULL",
        building=building,
    )
    assert live_steps == [(0,)]
    # The neighbour is untouched.
    assert len((await workflows.list(org.manager, building_id=neighbour)).items) == 1

    # A late upsert of the deleted building does not bring a workflow back, nor does the api.
    await buildings.handled(await buildings.publish(buildings.change(building, ChangeOp.UPSERT)))
    assert (await workflows.list(org.manager, building_id=building)).items == []
    with pytest.raises(NotFound):
        await workflows.create(org.manager, building)


async def test_a_delete_handled_before_the_upsert_wins(
    buildings: Buildings, workflows: Client
) -> None:
    org, building = buildings.org, uuid.uuid4()
    upsert = buildings.change(building, ChangeOp.UPSERT)
    delete = buildings.change(building, ChangeOp.DELETE)
    await buildings.publish(delete)
    await buildings.handled(await buildings.publish(upsert))
    assert (await workflows.list(org.manager, building_id=building)).items == []


async def test_malformed_messages_are_dropped_and_the_rest_handled(
    buildings: Buildings, workflows: Client
) -> None:
    org, building = buildings.org, uuid.uuid4()
    wrong_collection = buildings.change(building, ChangeOp.UPSERT).model_copy(
        update={"collection": "rooms"}
    )
    other_org = buildings.change(building, ChangeOp.UPSERT).model_copy(
        update={"organization_id": uuid.uuid4()}
    )
    await buildings.publish(b"{not json")
    await buildings.publish(b'{"collection": "buildings"}')
    await buildings.publish(wrong_collection)
    await buildings.publish(other_org)
    last = await buildings.publish(buildings.change(building, ChangeOp.UPSERT))

    await buildings.handled(last)
    assert len((await workflows.list(org.manager, building_id=building)).items) == 1
    assert (await workflows.list(Org(id=other_org.organization_id).manager)).items == []


class FakeMessage:
    """Records what the handler did with a message."""

    def __init__(self, payload: bytes, subject: str, delivery_count: int = 1) -> None:
        self.subject = subject
        self.data = payload
        self._delivery_count = delivery_count
        self.outcome: tuple[str, float | None] | None = None

    @property
    def delivery_count(self) -> int:
        return self._delivery_count

    async def ack(self, *, confirmed: bool = True) -> None:
        self.outcome = ("ack", None)

    async def nak(self, delay_seconds: float | None = None) -> None:
        self.outcome = ("nak", delay_seconds)

    async def term(self) -> None:
        self.outcome = ("term", None)


async def test_a_failure_is_naked_with_a_growing_delay(
    buildings: Buildings, workflows_runtime: Runtime
) -> None:
    change = buildings.change(uuid.uuid4(), ChangeOp.UPSERT)
    subject = change_subject(change.organization_id, BUILDINGS_COLLECTION)
    unreachable = Database("postgresql://postgres@127.0.0.1:1/nowhere", name="down", pool_size=1)
    broken = WorkflowsState(database=unreachable, ids=SnowflakeGenerator(1))
    try:
        for delivery, delay in ((1, 1.0), (2, 2.0), (4, 8.0), (30, 60.0)):
            message = FakeMessage(change.model_dump_json().encode(), subject, delivery)
            await handle(broken, message)
            assert message.outcome == ("nak", delay)
            assert nak_delay(delivery) == delay
    finally:
        await unreachable.dispose()

    state = WorkflowsState.of(workflows_runtime)
    healthy = FakeMessage(change.model_dump_json().encode(), subject)
    await handle(state, healthy)
    assert healthy.outcome == ("ack", None)
    garbage = FakeMessage(b"\xff", subject)
    await handle(state, garbage)
    assert garbage.outcome == ("term", None)


async def test_a_batch_settles_edits_at_once_and_the_rest_in_order(
    buildings: Buildings, workflows: Client, workflows_runtime: Runtime
) -> None:
    org, edited, new = buildings.org, uuid.uuid4(), uuid.uuid4()
    await buildings.handled(await buildings.publish(buildings.change(edited, ChangeOp.UPSERT)))
    (default,) = (await workflows.list(org.manager, building_id=edited)).items
    subject = change_subject(org.id, BUILDINGS_COLLECTION)

    def message(change: Change | bytes) -> FakeMessage:
        payload = change if isinstance(change, bytes) else change.model_dump_json().encode()
        return FakeMessage(payload, subject)

    batch = [
        message(buildings.change(edited, ChangeOp.UPSERT)),  # has its workflow: settled at once
        message(buildings.change(new, ChangeOp.UPSERT)),  # a new building: created
        message(b"{not json"),
        message(buildings.change(edited, ChangeOp.DELETE)),  # retires the default workflow
        message(buildings.change(edited, ChangeOp.UPSERT)),  # too late: nothing comes back
    ]
    await handle_batch(WorkflowsState.of(workflows_runtime), batch)

    assert [m.outcome for m in batch] == [("ack", None)] * 2 + [("term", None)] + [
        ("ack", None)
    ] * 2
    assert (await workflows.list(org.manager, building_id=edited)).items == []
    (created,) = (await workflows.list(org.manager, building_id=new)).items
    assert created.id != default.id


async def test_a_batch_of_new_buildings_gets_their_workflows_in_one_transaction(
    buildings: Buildings, workflows: Client, workflows_runtime: Runtime, database: Database
) -> None:
    org = buildings.org
    new = [uuid.uuid4() for _ in range(40)]
    subject = change_subject(org.id, BUILDINGS_COLLECTION)
    # Each building is created and then edited within the batch (an offline client's
    # create and later edit, pushed together).
    batch = [
        FakeMessage(buildings.change(building, ChangeOp.UPSERT).model_dump_json().encode(), subject)
        for building in new + new
    ]
    await handle_batch(WorkflowsState.of(workflows_runtime), batch)

    assert [m.outcome for m in batch] == [("ack", None)] * len(batch)
    made = await rows(
        database,
        "SELECT building_id, xmin::text, idempotency_key FROM workflows"
        " WHERE organization_id = :org",
        org=org.id,
    )
    assert sorted(building for building, _, _ in made) == sorted(new)
    assert {key for _, _, key in made} == {contract.default_workflow_key(b) for b in new}
    assert len({transaction for _, transaction, _ in made}) == 1
    steps = await rows(
        database,
        "SELECT count(*) FROM workflow_steps s JOIN workflows w ON w.id = s.workflow_id"
        " WHERE w.organization_id = :org",
        org=org.id,
    )
    assert steps == [(len(new) * len(DEFAULT_STEPS),)]
    # Their changes, as one create would record them: each workflow, then its steps in
    # order, for every building in the batch's order. The transaction packs each
    # subject's changes into outbox rows of at most ROW_MAX_BYTES: a handful of rows
    # for 240 records, not one each.
    outbox = await rows(
        database,
        "SELECT subject, payload FROM outbox WHERE subject LIKE :subjects ORDER BY id",
        subjects=f"changes.{org.id}.%",
    )
    collections = [subject.rsplit(".", 1)[1] for subject, _ in outbox]
    assert collections[0] == contract.WORKFLOWS_COLLECTION
    assert set(collections[1:]) == {contract.STEPS_COLLECTION}
    assert len(outbox) <= 4
    # The cap is on the changes' own bytes: a pack adds its brackets and commas.
    assert all(
        len(payload) - len(unpack_changes(bytes(payload))) - 1 <= ROW_MAX_BYTES
        for _, payload in outbox
    )
    published = [
        Change.model_validate(change)
        for _, payload in outbox
        for change in unpack_changes(bytes(payload))
    ]
    made_workflows, made_steps = published[: len(new)], published[len(new) :]
    assert len(made_steps) == len(new) * len(DEFAULT_STEPS)
    for number, building in enumerate(new):
        workflow = made_workflows[number]
        its_steps = made_steps[number * len(DEFAULT_STEPS) : (number + 1) * len(DEFAULT_STEPS)]
        assert (workflow.collection, workflow.building_id, workflow.version) == (
            contract.WORKFLOWS_COLLECTION,
            building,
            1,
        )
        assert workflow.data is not None
        assert (workflow.data["name"], workflow.data["status"]) == (DEFAULT_TEMPLATE_NAME, "open")
        assert [step.collection for step in its_steps] == [contract.STEPS_COLLECTION] * len(
            DEFAULT_STEPS
        )
        assert [step.data["workflow_id"] for step in its_steps if step.data] == [
            str(workflow.id)
        ] * len(DEFAULT_STEPS)
        assert [step.data["position"] for step in its_steps if step.data] == sorted(
            step.data["position"] for step in its_steps if step.data
        )

    # Handled again (a redelivery), nothing more is made.
    await handle_batch(WorkflowsState.of(workflows_runtime), batch)
    assert len((await workflows.list(org.manager)).items) == len(new)


async def test_a_batch_create_that_fails_leaves_each_building_to_its_own_attempt(
    buildings: Buildings, workflows: Client, workflows_runtime: Runtime
) -> None:
    org, taken, fine, other = buildings.org, uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    # The key of `taken`'s default workflow was used for another building: its create
    # is a Conflict, which rolls the batch back.
    await workflows.create(org.manager, other, key=contract.default_workflow_key(taken))
    subject = change_subject(org.id, BUILDINGS_COLLECTION)
    batch = [
        FakeMessage(buildings.change(b, ChangeOp.UPSERT).model_dump_json().encode(), subject)
        for b in (fine, taken)
    ]
    await handle_batch(WorkflowsState.of(workflows_runtime), batch)

    assert [m.outcome for m in batch] == [("ack", None), ("nak", 1.0)]
    assert len((await workflows.list(org.manager, building_id=fine)).items) == 1
    assert (await workflows.list(org.manager, building_id=taken)).items == []


async def test_a_batch_skips_a_deleted_building_and_creates_the_others(
    buildings: Buildings, workflows: Client, workflows_runtime: Runtime, database: Database
) -> None:
    org, deleted, fine, also_fine = buildings.org, uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await buildings.handled(await buildings.publish(buildings.change(deleted, ChangeOp.DELETE)))
    subject = change_subject(org.id, BUILDINGS_COLLECTION)
    batch = [
        FakeMessage(buildings.change(b, ChangeOp.UPSERT).model_dump_json().encode(), subject)
        for b in (fine, deleted, also_fine)
    ]
    await handle_batch(WorkflowsState.of(workflows_runtime), batch)

    assert [m.outcome for m in batch] == [("ack", None)] * 3
    assert (await workflows.list(org.manager, building_id=deleted)).items == []
    made = await rows(
        database,
        "SELECT building_id, xmin::text FROM workflows WHERE organization_id = :org",
        org=org.id,
    )
    assert sorted(building for building, _ in made) == sorted([fine, also_fine])
    # Made by the batch's one transaction: the deleted building did not send the batch
    # to the one-by-one path.
    assert len({transaction for _, transaction in made}) == 1


async def test_a_batch_whose_lookup_fails_naks_each_message(buildings: Buildings) -> None:
    change = buildings.change(uuid.uuid4(), ChangeOp.UPSERT)
    subject = change_subject(change.organization_id, BUILDINGS_COLLECTION)
    unreachable = Database("postgresql://postgres@127.0.0.1:1/nowhere", name="down", pool_size=1)
    broken = WorkflowsState(database=unreachable, ids=SnowflakeGenerator(1))
    batch = [FakeMessage(change.model_dump_json().encode(), subject, 3) for _ in range(2)]
    try:
        await handle_batch(broken, batch)
    finally:
        await unreachable.dispose()
    assert [m.outcome for m in batch] == [("nak", 4.0), ("nak", 4.0)]


async def test_edits_of_buildings_found_before_settle_without_the_database(
    buildings: Buildings, workflows: Client, workflows_runtime: Runtime
) -> None:
    org, building = buildings.org, uuid.uuid4()
    subject = change_subject(org.id, BUILDINGS_COLLECTION)

    def edit() -> FakeMessage:
        change = buildings.change(building, ChangeOp.UPSERT)
        return FakeMessage(change.model_dump_json().encode(), subject)

    known = BuildingsWithDefaults()
    first = [edit()]
    await handle_batch(WorkflowsState.of(workflows_runtime), first, known)
    assert first[0].outcome == ("ack", None)
    assert building in known
    assert len((await workflows.list(org.manager, building_id=building)).items) == 1

    # Its next edits are settled from memory: a database that cannot be reached is
    # never asked (it would nak them, as the lookup test below shows).
    unreachable = Database("postgresql://postgres@127.0.0.1:1/nowhere", name="down", pool_size=1)
    broken = WorkflowsState(database=unreachable, ids=SnowflakeGenerator(1))
    later = [edit(), edit()]
    try:
        await handle_batch(broken, later, known)
    finally:
        await unreachable.dispose()
    assert [m.outcome for m in later] == [("ack", None)] * 2

    # A delete is handled in order, and the building is forgotten.
    gone = [
        FakeMessage(buildings.change(building, ChangeOp.DELETE).model_dump_json().encode(), subject)
    ]
    await handle_batch(WorkflowsState.of(workflows_runtime), gone, known)
    assert gone[0].outcome == ("ack", None)
    assert building not in known
    assert (await workflows.list(org.manager, building_id=building)).items == []


def test_the_memory_of_buildings_forgets_the_oldest_beyond_its_capacity() -> None:
    known = BuildingsWithDefaults(capacity=3)
    first, *rest = [uuid.uuid4() for _ in range(4)]
    known.add([first, *rest[:2]])
    known.add([rest[2]])
    assert first not in known
    assert all(building in known for building in rest)
    assert len(known) == 3
    known.discard(rest[0])
    assert rest[0] not in known
    assert len(known) == 2


async def test_packed_messages_are_settled_whole_and_in_order(
    buildings: Buildings, workflows: Client, workflows_runtime: Runtime, database: Database
) -> None:
    org = buildings.org
    new, gone, kept = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    subject = change_subject(org.id, BUILDINGS_COLLECTION)

    def packed(*changes: Change | bytes) -> FakeMessage:
        return FakeMessage(
            pack_changes(
                [c if isinstance(c, bytes) else c.model_dump_json().encode() for c in changes]
            ),
            subject,
        )

    batch = [
        packed(buildings.change(new, ChangeOp.UPSERT), buildings.change(new, ChangeOp.UPSERT)),
        # Created and deleted in one message: in order, so nothing is left.
        packed(buildings.change(gone, ChangeOp.UPSERT), buildings.change(gone, ChangeOp.DELETE)),
        # A malformed item is dropped; the message's good change is still applied.
        packed(b'{"collection": "buildings"}', buildings.change(kept, ChangeOp.UPSERT)),
        packed(b'{"collection": "buildings"}'),
    ]
    await handle_batch(WorkflowsState.of(workflows_runtime), batch)

    assert [m.outcome for m in batch] == [("ack", None)] * 3 + [("term", None)]
    assert len((await workflows.list(org.manager, building_id=new)).items) == 1
    assert (await workflows.list(org.manager, building_id=gone)).items == []
    assert len((await workflows.list(org.manager, building_id=kept)).items) == 1
    # In order: `gone`'s default workflow was made, then cancelled and deleted with it
    # (the delete first would have left no workflow row at all).
    assert await rows(
        database,
        "SELECT status, deleted_at IS NOT NULL FROM workflows WHERE building_id = :building",
        building=gone,
    ) == [("cancelled", True)]


async def test_a_failing_building_holds_up_only_itself_in_a_packed_message(
    buildings: Buildings, workflows: Client, workflows_runtime: Runtime, database: Database
) -> None:
    org, taken, fine, other = buildings.org, uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    # `taken`'s default workflow key is used for another building: its create fails
    # every time, as a lasting error would.
    await workflows.create(org.manager, other, key=contract.default_workflow_key(taken))
    message = FakeMessage(
        pack_changes(
            [
                buildings.change(taken, ChangeOp.UPSERT).model_dump_json().encode(),
                buildings.change(fine, ChangeOp.UPSERT).model_dump_json().encode(),
                buildings.change(taken, ChangeOp.DELETE).model_dump_json().encode(),
            ]
        ),
        change_subject(org.id, BUILDINGS_COLLECTION),
        delivery_count=2,
    )

    await handle(WorkflowsState.of(workflows_runtime), message)

    assert message.outcome == ("nak", 2.0)
    assert len((await workflows.list(org.manager, building_id=fine)).items) == 1
    # The failed building's later delete waits for the retry, after its upsert.
    assert (
        await rows(database, "SELECT 1 FROM retired_buildings WHERE building_id = :b", b=taken)
        == []
    )


def test_a_fetch_is_settled_in_slices_of_about_512_changes() -> None:
    def packed(count: int) -> FakeMessage:
        change = b'{"collection": "buildings"}'
        return FakeMessage(pack_changes([change] * count), "changes.x.buildings")

    fetched = [packed(256), packed(200), packed(100), packed(1), FakeMessage(b"junk", "s")]

    assert [[fetched.index(m) for m in piece] for piece in slices(fetched)] == [[0, 1], [2, 3, 4]]
