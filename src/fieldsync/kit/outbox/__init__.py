"""The transactional outbox: changes committed with the data, published to JetStream after.

A service appends a message to its `outbox` table in the same transaction as the
change it describes (`append`). One relay per service (`OutboxRelay`, leader elected
with a PostgreSQL advisory lock) publishes unpublished rows in id order with
`Nats-Msg-Id` = `<service>:<row id>`, then marks them published. A crash between publishing
and marking republishes the same ids, which JetStream drops as duplicates inside the
stream's dedupe window; a relay that is down delays messages and never loses them.
`append_packed` writes one row per subject (up to 64 KiB) for the messages of one
append statement (`packing`).
A relay given `pack` publishes the rows of one subject in a batch as one message (id:
`packed_message_id`); a republished pack holding rows committed after the crash is
stored again, so its consumers must take copies as no-ops.
"""

from fieldsync.kit.outbox.relay import OutboxRelay, message_id, packed_message_id
from fieldsync.kit.outbox.table import (
    append,
    append_all,
    append_all_raw,
    append_packed,
    append_packed_raw,
    outbox_table,
    still_present,
)

__all__ = [
    "OutboxRelay",
    "append",
    "append_all",
    "append_all_raw",
    "append_packed",
    "append_packed_raw",
    "message_id",
    "outbox_table",
    "packed_message_id",
    "still_present",
]
