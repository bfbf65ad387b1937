"""Helpers for the workflows tests: organizations and their callers, typed requests."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict
from sqlalchemy import text

from fieldsync.contracts import workflows as contract
from fieldsync.contracts.changes import Change, ChangeOp, unpack_changes
from fieldsync.contracts.collections import WORKFLOWS
from fieldsync.contracts.identity import Caller, Role
from fieldsync.contracts.mutations import (
    AppliedMutations,
    ApplyMutations,
    Mutation,
    MutationResult,
    MutationStatus,
    RejectionCode,
)
from fieldsync.kit.db.engine import Database
from fieldsync.kit.messaging import Bus

ReplyT = TypeVar("ReplyT", bound=BaseModel)


def caller(organization_id: uuid.UUID, role: Role) -> Caller:
    """A caller of the organization with this role."""
    return Caller(
        user_id=uuid.uuid4(), organization_id=organization_id, role=role, session_id=uuid.uuid4()
    )


async def rows(database: Database, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    """The rows of a query against the workflows database."""
    async with database.engine.connect() as connection:
        result = await connection.execute(text(sql), params)
        return [tuple(row) for row in result]


async def eventually(condition: Callable[[], Awaitable[bool]], *, timeout: float = 10.0) -> None:
    """`tests.waiting.until` for conditions that take a query: poll until it holds."""
    async with asyncio.timeout(timeout):
        # Polls state other tasks and processes change (no event to await): bounded above.
        while not await condition():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


def body_of(who: Caller, **fields: Any) -> dict[str, Any]:
    """A raw request body from `who` (JSON-ready), for what the models would refuse."""
    return {"caller": who.model_dump(mode="json"), **fields}


@dataclass
class Org:
    """An organization no other test uses, with one caller per role."""

    id: uuid.UUID = field(default_factory=uuid.uuid4)

    def __post_init__(self) -> None:
        self.admin = caller(self.id, Role.ADMIN)
        self.manager = caller(self.id, Role.MANAGER)
        self.technician = caller(self.id, Role.TECHNICIAN)


class Client:
    """Calls the workflows subjects over a real Bus, the way the api will."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def call(
        self, subject: str, request: BaseModel, reply: type[ReplyT], timeout: float = 30.0
    ) -> ReplyT:
        return await self.bus.request(subject, request, reply, timeout=timeout)

    async def raw(self, subject: str, body: dict[str, Any]) -> None:
        """Send a JSON body as given (what the request models would refuse to build)."""
        await self.bus.request(subject, _RawBody.model_validate(body), _AnyReply, timeout=10.0)

    async def create(
        self,
        who: Caller,
        building_id: uuid.UUID | None = None,
        *,
        key: str | None = None,
        scope: list[uuid.UUID] | None = None,
        **fields: Any,
    ) -> contract.Workflow:
        created = await self.create_reply(who, building_id, key=key, scope=scope, **fields)
        return created.workflow

    async def create_reply(
        self,
        who: Caller,
        building_id: uuid.UUID | None = None,
        *,
        key: str | None = None,
        scope: list[uuid.UUID] | None = None,
        **fields: Any,
    ) -> contract.WorkflowCreated:
        request = contract.WorkflowCreate(
            caller=who,
            building_scope=scope,
            building_id=building_id or uuid.uuid4(),
            idempotency_key=key or secrets.token_hex(8),
            **fields,
        )
        return await self.call(contract.CREATE, request, contract.WorkflowCreated)

    async def get(
        self, who: Caller, workflow_id: uuid.UUID, *, scope: list[uuid.UUID] | None = None
    ) -> contract.Workflow:
        request = contract.WorkflowGet(caller=who, building_scope=scope, id=workflow_id)
        return await self.call(contract.GET, request, contract.Workflow)

    async def list(self, who: Caller, **fields: Any) -> contract.WorkflowPage:
        request = contract.WorkflowList(caller=who, **fields)
        return await self.call(contract.LIST, request, contract.WorkflowPage)

    async def update(
        self,
        who: Caller,
        workflow: contract.Workflow,
        *,
        scope: list[uuid.UUID] | None = None,
        **fields: Any,
    ) -> contract.Workflow:
        request = contract.WorkflowUpdate(
            caller=who, building_scope=scope, id=workflow.id, version=workflow.version, **fields
        )
        return await self.call(contract.UPDATE, request, contract.Workflow)

    async def transition(
        self,
        who: Caller,
        workflow: contract.Workflow,
        status: contract.WorkflowStatus,
        *,
        scope: list[uuid.UUID] | None = None,
    ) -> contract.Workflow:
        request = contract.WorkflowTransition(
            caller=who,
            building_scope=scope,
            id=workflow.id,
            version=workflow.version,
            status=status,
        )
        return await self.call(contract.TRANSITION, request, contract.Workflow)

    async def delete(
        self, who: Caller, workflow: contract.Workflow, *, scope: list[uuid.UUID] | None = None
    ) -> contract.Deleted:
        request = contract.WorkflowDelete(
            caller=who, building_scope=scope, id=workflow.id, version=workflow.version
        )
        return await self.call(contract.DELETE, request, contract.Deleted)

    async def steps(
        self, who: Caller, workflow_id: uuid.UUID, *, scope: list[uuid.UUID] | None = None
    ) -> list[contract.WorkflowStep]:
        """Every step of a workflow, following cursors."""
        found: list[contract.WorkflowStep] = []
        cursor: str | None = None
        while True:
            request = contract.StepList(
                caller=who, building_scope=scope, workflow_id=workflow_id, cursor=cursor, limit=200
            )
            page = await self.call(contract.STEP_LIST, request, contract.WorkflowStepPage)
            found.extend(page.items)
            if page.next_cursor is None:
                return found
            cursor = page.next_cursor

    async def add_step(
        self,
        who: Caller,
        workflow_id: uuid.UUID,
        title: str,
        *,
        scope: list[uuid.UUID] | None = None,
        **fields: Any,
    ) -> contract.WorkflowStep:
        request = contract.StepCreate(
            caller=who, building_scope=scope, workflow_id=workflow_id, title=title, **fields
        )
        return await self.call(contract.STEP_CREATE, request, contract.WorkflowStep)

    async def get_step(
        self, who: Caller, step_id: uuid.UUID, *, scope: list[uuid.UUID] | None = None
    ) -> contract.WorkflowStep:
        request = contract.StepGet(caller=who, building_scope=scope, id=step_id)
        return await self.call(contract.STEP_GET, request, contract.WorkflowStep)

    async def update_step(
        self,
        who: Caller,
        step: contract.WorkflowStep,
        *,
        scope: list[uuid.UUID] | None = None,
        **fields: Any,
    ) -> contract.WorkflowStep:
        request = contract.StepUpdate(
            caller=who, building_scope=scope, id=step.id, version=step.version, **fields
        )
        return await self.call(contract.STEP_UPDATE, request, contract.WorkflowStep)

    async def delete_step(
        self, who: Caller, step: contract.WorkflowStep, *, scope: list[uuid.UUID] | None = None
    ) -> contract.Deleted:
        request = contract.StepDelete(
            caller=who, building_scope=scope, id=step.id, version=step.version
        )
        return await self.call(contract.STEP_DELETE, request, contract.Deleted)


class Device:
    """One device of a user, pushing mutations to `workflows.apply` the way sync does."""

    def __init__(
        self,
        bus: Bus,
        who: Caller,
        *,
        scope: list[uuid.UUID] | None = None,
        client_id: str | None = None,
    ) -> None:
        self.bus = bus
        self.who = who
        self.scope = scope
        self.client_id = client_id or f"device-{secrets.token_hex(4)}"
        self.last_mutation_id = 0

    def upsert(
        self,
        collection: str,
        record_id: uuid.UUID,
        base_version: int | None = None,
        **data: Any,
    ) -> Mutation:
        """The next mutation: create (no base version) or update a record (JSON-ready data)."""
        return self._next(collection, record_id, ChangeOp.UPSERT, data, base_version)

    def delete(
        self, collection: str, record_id: uuid.UUID, base_version: int | None = None
    ) -> Mutation:
        """The next mutation: delete a record."""
        return self._next(collection, record_id, ChangeOp.DELETE, None, base_version)

    def _next(
        self,
        collection: str,
        record_id: uuid.UUID,
        op: ChangeOp,
        data: dict[str, Any] | None,
        base_version: int | None,
    ) -> Mutation:
        self.last_mutation_id += 1
        return Mutation(
            mutation_id=self.last_mutation_id,
            collection=collection,
            id=record_id,
            op=op,
            data=data,
            base_version=base_version,
        )

    def request(self, *mutations: Mutation) -> ApplyMutations:
        """One push of these mutations."""
        return ApplyMutations(
            caller=self.who,
            building_scope=self.scope,
            client_id=self.client_id,
            mutations=list(mutations),
        )

    async def send(self, request: ApplyMutations) -> list[MutationResult]:
        """Send a push; its results in order."""
        reply = await self.bus.request(
            WORKFLOWS.apply_subject, request, AppliedMutations, timeout=30.0
        )
        return reply.results

    async def push(self, *mutations: Mutation) -> list[MutationResult]:
        """Push these mutations; their results in order."""
        return await self.send(self.request(*mutations))

    async def one(self, mutation: Mutation) -> MutationResult:
        """Push one mutation; its result."""
        (result,) = await self.push(mutation)
        return result


async def changes_of(database: Database, org: Org) -> list[Change]:
    """The organization's Changes in the outbox, in the order they were written."""
    found = await rows(
        database,
        "SELECT payload FROM outbox WHERE subject LIKE :prefix ORDER BY id",
        prefix=f"changes.{org.id}.%",
    )
    return [
        Change.model_validate(change)
        for (payload,) in found
        for change in unpack_changes(bytes(payload))
    ]


def applied(result: MutationResult, version: int | None) -> None:
    """Assert `result` is applied at `version`."""
    assert (result.status, result.version, result.record, result.error) == (
        MutationStatus.APPLIED,
        version,
        None,
        None,
    ), result


def rejected(result: MutationResult, code: RejectionCode, field: str | None = None) -> None:
    """Assert `result` is rejected with `code` (naming `field` when given), showing nothing."""
    assert result.status is MutationStatus.REJECTED, result
    assert result.error is not None
    assert (result.error.code, result.version, result.record) == (code, None, None), result
    if field is not None:
        assert result.error.field == field, result


def conflict(result: MutationResult, record: dict[str, object] | None, version: int) -> None:
    """Assert `result` is a conflict carrying `record` at `version`."""
    assert (result.status, result.record, result.version, result.error) == (
        MutationStatus.CONFLICT,
        record,
        version,
        None,
    ), result


class _RawBody(BaseModel):
    """Serialises to exactly the fields it was given."""

    model_config = ConfigDict(extra="allow")


class _AnyReply(BaseModel):
    model_config = ConfigDict(extra="allow")
