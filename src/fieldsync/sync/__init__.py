"""The sync service: the change tracker and change processor of offline sync.

- `ingest/`: CHANGES into the replica, in order, with per-organization versions.
- `pull/`: the change feed after a checkpoint, in the caller's scope.
- `push/`: clients' mutations, checked and sent to their owners; read-your-writes.
- `realtime/`: pokes over SSE and WebSocket.
- `watermelon/`, `rxdb/`: the WatermelonDB and RxDB wire formats over the same pull,
  push and realtime.
- `tombstones.py`: deletes kept for a horizon, then purged (older checkpoints: 410).
- `models.py`, `migrations/`: the replica's tables.
"""
