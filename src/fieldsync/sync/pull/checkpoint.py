"""Checkpoints: opaque to clients, a position in an organization's change feed.

A position is (version, record id, collection): the feed is ordered by the version
of the batch that ingested a change, then by record id and collection. A checkpoint
with only a version means "after everything of that version".

A position inside a sync that has not caught up yet (more pages wait) also carries
`since`: the replica version up to which the client has seen every delete. A first
sync's pages walk records ingested long ago, below the purge horizon, yet the client
misses no delete as long as the tombstones after `since` are kept.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass, field

from fieldsync.kit.errors import ValidationFailed

PREFIX = "c1"
# Sorts after every real (record id, collection) of a version, byte-wise.
END_OF_VERSION = (uuid.UUID(int=(1 << 128) - 1), "\x7f")
MAX_CHECKPOINT_LENGTH = 200


@dataclass(frozen=True, order=True)
class Position:
    """A place in the feed; changes strictly after it come next."""

    version: int
    record_id: uuid.UUID = END_OF_VERSION[0]
    collection: str = END_OF_VERSION[1]
    # Not part of the feed order: where the client's knowledge of deletes stands.
    since: int | None = field(default=None, compare=False)

    @property
    def at_version_end(self) -> bool:
        """True when the position is after everything of its version."""
        return (self.record_id, self.collection) == END_OF_VERSION


def encode(position: Position) -> str:
    """The opaque string a client stores."""
    if position.at_version_end:
        raw = f"{PREFIX}:{position.version}"
    else:
        raw = f"{PREFIX}:{position.version}:{position.record_id.hex}:{position.collection}"
        if position.since is not None:
            raw += f":{position.since}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(checkpoint: str | None) -> Position | None:
    """The position of a checkpoint this server issued; None for a first sync.

    Raises ValidationFailed for anything else, so a client sees a 422 naming the field.
    """
    if checkpoint is None:
        return None
    try:
        if len(checkpoint) > MAX_CHECKPOINT_LENGTH:
            raise ValueError("too long")
        padded = checkpoint + "=" * (-len(checkpoint) % 4)
        parts = base64.urlsafe_b64decode(padded.encode("ascii")).decode().split(":")
        if parts[0] != PREFIX or len(parts) not in (2, 4, 5):
            raise ValueError("unknown format")
        version = _version(parts[1])
        if len(parts) == 2:
            return Position(version)
        since = _version(parts[4]) if len(parts) == 5 else None
        return Position(version, uuid.UUID(hex=parts[2]), parts[3], since)
    except (ValueError, UnicodeError, binascii.Error):
        raise ValidationFailed(
            "the checkpoint is not one this server issued; send null to start over",
            errors=[{"loc": ["body", "checkpoint"], "msg": "malformed checkpoint"}],
        ) from None


def _version(text: str) -> int:
    version = int(text)
    if not 0 <= version < 2**63:
        raise ValueError("version out of range")
    return version
