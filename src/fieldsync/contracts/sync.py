"""What the sync service announces over NATS."""

from __future__ import annotations

import uuid

from pydantic import BaseModel

# Core NATS (not JetStream): a poke is a hint to pull, never the data itself.
POKE_SUBJECTS = "sync.poke.*"
# More buildings than this in one batch: the poke names none (every client pulls).
MAX_POKE_BUILDINGS = 200


def poke_subject(organization_id: uuid.UUID) -> str:
    """Where the sync service announces a new version of an organization's replica."""
    return f"sync.poke.{organization_id}"


class Poke(BaseModel):
    """An organization's replica reached `version`.

    `buildings`: the buildings whose records changed (None: too many to name, or
    unknown); `users`: users whose building assignments changed.
    """

    organization_id: uuid.UUID
    version: int
    buildings: list[uuid.UUID] | None
    users: list[uuid.UUID]
