"""The push request and reply on the wire."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fieldsync.contracts.changes import ChangeOp
from fieldsync.contracts.collections import COLLECTIONS
from fieldsync.contracts.mutations import (
    MAX_MUTATIONS,
    BaseVersion,
    ClientId,
    MutationError,
    MutationId,
    MutationStatus,
)


class PushMutation(BaseModel):
    """One offline change; `base_version` is the version it was made on (None: a create)."""

    model_config = ConfigDict(extra="forbid")

    mutation_id: MutationId
    collection: str = Field(max_length=64, description=f"one of: {', '.join(sorted(COLLECTIONS))}")
    id: uuid.UUID
    op: ChangeOp
    data: dict[str, Any] | None = None
    base_version: BaseVersion | None = None

    @field_validator("collection")
    @classmethod
    def _known_collection(cls, value: str) -> str:
        if value not in COLLECTIONS:
            raise ValueError(f"unknown collection; known: {', '.join(sorted(COLLECTIONS))}")
        return value


class PushIn(BaseModel):
    """A batch of one client's mutations, oldest first."""

    model_config = ConfigDict(extra="forbid")

    client_id: ClientId
    mutations: list[PushMutation] = Field(min_length=1, max_length=MAX_MUTATIONS)

    @field_validator("mutations")
    @classmethod
    def _increasing_ids(cls, value: list[PushMutation]) -> list[PushMutation]:
        for earlier, later in itertools.pairwise(value):
            if later.mutation_id <= earlier.mutation_id:
                raise ValueError("mutation_id must increase within a push (oldest first)")
        return value


class PushResult(BaseModel):
    """What became of one mutation (see the protocol reference)."""

    mutation_id: int
    status: MutationStatus
    version: int | None = None
    record: dict[str, Any] | None = None
    error: MutationError | None = None

    def to_wire(self) -> dict[str, Any]:
        """Only the fields the status uses; a conflict's `record` is null once deleted."""
        wire: dict[str, Any] = {"mutation_id": self.mutation_id, "status": self.status.value}
        if self.version is not None:
            wire["version"] = self.version
        if self.status is MutationStatus.CONFLICT:
            wire["record"] = self.record
        if self.error is not None:
            wire["error"] = self.error.model_dump(mode="json", exclude_none=True)
        return wire


class PushOut(BaseModel):
    """One result per mutation, in the order they were pushed."""

    results: list[PushResult]
