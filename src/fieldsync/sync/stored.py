"""How the replica stores a record: only as its change, the JSON a pull sends.

A change is `{"collection":…,"id":…` + `,"op":"upsert","data":` + the record's JSON + `}`
(`ingest.writer.wire_change`), or ends `,"op":"delete","data":null}` for a delete. The
readers that want the record alone (RxDB documents, WatermelonDB and push lookups) take
it out with `record_sql`, in PostgreSQL and without parsing it.
"""

from __future__ import annotations

# What precedes the record's JSON in a stored upsert.
UPSERT_MARKER = ',"op":"upsert","data":'


def record_sql(change: str) -> str:
    """SQL of the record's JSON inside `change` (an SQL text expression of a stored
    upsert); for a delete the caller must not ask (its result is meaningless)."""
    at = f"strpos({change}, '{UPSERT_MARKER}')"
    return f"substr({change}, {at} + {len(UPSERT_MARKER)}, length({change}) - {at} - {len(UPSERT_MARKER)})"


def document_sql(change: str) -> str:
    """SQL of the record's JSON inside `change` with `"_deleted":false` added last (an
    RxDB document): the record is an object, so its closing brace is replaced."""
    at = f"strpos({change}, '{UPSERT_MARKER}')"
    return (
        f"substr({change}, {at} + {len(UPSERT_MARKER)},"
        f" length({change}) - {at} - {len(UPSERT_MARKER)} - 1) || ',\"_deleted\":false}}'"
    )
