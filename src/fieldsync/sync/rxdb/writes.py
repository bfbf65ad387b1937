"""RxDB push: rows `{newDocumentState, assumedMasterState?}` as native mutations.

Each row becomes one mutation through the native push service, so authorization,
validation, scope and read-your-writes are the native ones:

- no `assumedMasterState`: a create (`base_version` null); the id in use is a conflict;
  a delete of a document the server has is a conflict too, of one it lacks a no-op;
- otherwise an update of the fields that differ from the assumed state, or a delete,
  both compare-and-set on the assumed state's `version` (none: the client's own create,
  version 1).

The mutations are named by a hash of the rows (`client_id`) and their position
(`mutation_id`): a push sent again is answered from the owners' ledgers, and any
other repeat of a row conflicts on its version, so nothing is written twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from typing import Any

import orjson

from fieldsync.contracts.changes import ChangeOp
from fieldsync.contracts.collections import Collection
from fieldsync.contracts.identity import Caller
from fieldsync.contracts.mutations import MAX_MUTATIONS, MutationStatus, RejectionCode
from fieldsync.kit.errors import Forbidden, ValidationFailed
from fieldsync.kit.runtime import Runtime
from fieldsync.sync.push.replica import lookup
from fieldsync.sync.push.schemas import PushIn, PushMutation, PushOut, PushResult
from fieldsync.sync.push.service import push
from fieldsync.sync.rxdb.schemas import Document, PushRow
from fieldsync.sync.scope import building_scope

MAX_VERSION = 2_147_483_647
CREATED_VERSION = 1


def _invalid(position: int, where: str, message: str) -> ValidationFailed:
    return ValidationFailed(
        f"row {position}: {message}", errors=[{"loc": ["body", position, where], "msg": message}]
    )


def _document_id(position: int, where: str, document: Document) -> uuid.UUID:
    value = document.get("id")
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise _invalid(position, where, "id must be a UUID string")


def _is_deleted(position: int, where: str, document: Document) -> bool:
    deleted = document.get("_deleted", False)
    if not isinstance(deleted, bool):
        raise _invalid(position, where, "_deleted must be a boolean")
    return deleted


def _fields(collection: Collection, document: Document) -> dict[str, Any]:
    """The fields a client may write; RxDB's `_`-fields and local-only columns are dropped."""
    return {name: value for name, value in document.items() if name in collection.writable}


def as_mutation(collection: Collection, position: int, row: PushRow) -> PushMutation:
    """The native mutation of one row (mutation ids are positions, from 1). 422 if malformed."""
    new, assumed = row.newDocumentState, row.assumedMasterState
    record_id = _document_id(position, "newDocumentState", new)
    deleting = _is_deleted(position, "newDocumentState", new)
    base_version: int | None = None
    data: dict[str, Any] | None = None
    if assumed is not None:
        if _document_id(position, "assumedMasterState", assumed) != record_id:
            raise _invalid(position, "assumedMasterState", "id differs from newDocumentState's")
        _is_deleted(position, "assumedMasterState", assumed)
        # No version: RxDB assumes the master holds what the client itself created
        # (it pushed it and has not pulled since), which the server wrote as version 1.
        base_version = assumed.get("version")
        if base_version is None:
            base_version = CREATED_VERSION
        if type(base_version) is not int or not 1 <= base_version <= MAX_VERSION:
            raise _invalid(position, "assumedMasterState", "version must be a positive integer")
    if not deleting:
        fields = _fields(collection, new)
        if assumed is not None:
            before = _fields(collection, assumed)
            fields = {
                name: fields.get(name)
                for name in set(fields) | set(before)
                if fields.get(name) != before.get(name)
            }
        data = fields
    return PushMutation(
        mutation_id=position + 1,
        collection=collection.name,
        id=record_id,
        op=ChangeOp.DELETE if deleting else ChangeOp.UPSERT,
        data=data,
        base_version=base_version,
    )


def _deleted_document(record_id: uuid.UUID, version: int | None) -> Document:
    document: Document = {"id": str(record_id), "_deleted": True}
    if version is not None:
        document["version"] = version
    return document


def _batch_name(collection: Collection, rows: list[PushRow], start: int) -> str:
    digest = hashlib.sha256(collection.name.encode() + b"\0" + str(start).encode())
    for row in rows:
        digest.update(orjson.dumps(row.model_dump(), option=orjson.OPT_SORT_KEYS))
    return "rxdb:" + digest.hexdigest()[:48]


async def write_rows(
    runtime: Runtime, caller: Caller, collection: Collection, rows: list[PushRow]
) -> list[Document]:
    """Write the rows; the server's current documents of the rows that conflicted.

    Rows the owner refuses make the whole answer an error after the others were
    written: 403 when the caller may not make the change, 422 for a value it refuses
    (the problem's `rejected` lists them). A row for a record outside the caller's
    scope conflicts with a deleted document: it is not theirs (any more).
    """
    mutations = [as_mutation(collection, position, row) for position, row in enumerate(rows)]
    conflicts: list[Document] = []
    # A delete without an assumed state conflicts when the server has the document.
    blind_deletes = [m.id for m in mutations if m.op is ChangeOp.DELETE and m.base_version is None]
    database = runtime.databases["sync"]
    known = await lookup(database, [(collection.name, i) for i in blind_deletes])
    # Only documents the caller may see are answered here; the rest go to the push
    # service, which answers them `not_found` without revealing anything.
    scope = await building_scope(database, caller) if known else None
    to_send: list[PushMutation] = []
    for mutation in mutations:
        record = known.get((collection.name, mutation.id))
        if (
            mutation.op is ChangeOp.DELETE
            and mutation.base_version is None
            and record is not None
            and record.organization_id == caller.organization_id
            and (scope is None or record.building_id in scope)
            and not record.deleted
            and record.data is not None
        ):
            conflicts.append({**record.data, "_deleted": False})
        else:
            to_send.append(mutation)
    rejected: list[dict[str, Any]] = []
    chunks = [
        to_send[start : start + MAX_MUTATIONS] for start in range(0, len(to_send), MAX_MUTATIONS)
    ]

    async def push_chunk(number: int, chunk: list[PushMutation]) -> PushOut:
        renumbered = [m.model_copy(update={"mutation_id": n}) for n, m in enumerate(chunk, start=1)]
        name = _batch_name(collection, rows, number * MAX_MUTATIONS)
        return await push(runtime, caller, PushIn(client_id=name, mutations=renumbered))

    if len({mutation.id for mutation in to_send}) == len(to_send):
        # Each document once: the chunks' outcomes do not depend on one another, and each
        # has its own ledger name, so they go to the owners side by side (two cores busy
        # instead of one, for the large pushes of an initial upload).
        # Both finish before a failure is raised: no push is left running unawaited.
        settled = await asyncio.gather(
            *(push_chunk(n, c) for n, c in enumerate(chunks)), return_exceptions=True
        )
        for outcome in settled:
            if isinstance(outcome, BaseException):
                raise outcome
        answers = [outcome for outcome in settled if isinstance(outcome, PushOut)]
    else:
        answers = [await push_chunk(n, c) for n, c in enumerate(chunks)]
    for chunk, pushed in zip(chunks, answers, strict=True):
        for mutation, result in zip(chunk, pushed.results, strict=True):
            _settle(mutation, result, conflicts, rejected)
    if rejected:
        forbidden = any(r["code"] == RejectionCode.FORBIDDEN for r in rejected)
        refusal = Forbidden if forbidden else ValidationFailed
        raise refusal(
            "some rows were refused; the other rows were written",
            rejected=rejected,
            conflicts=conflicts,
        )
    return conflicts


def _settle(
    mutation: PushMutation,
    result: PushResult,
    conflicts: list[Document],
    rejected: list[dict[str, Any]],
) -> None:
    if result.status is MutationStatus.CONFLICT:
        if result.record is None:
            conflicts.append(_deleted_document(mutation.id, result.version))
        else:
            conflicts.append({**result.record, "_deleted": False})
    elif result.status is MutationStatus.REJECTED and result.error is not None:
        if result.error.code is RejectionCode.NOT_FOUND:
            conflicts.append(_deleted_document(mutation.id, None))
        else:
            rejected.append(
                {"id": str(mutation.id), **result.error.model_dump(mode="json", exclude_none=True)}
            )
