"""fieldsync's Python sync client: a local store, offline edits, pull, push, pokes.

async with httpx.AsyncClient(base_url="http://127.0.0.1:8000") as http:
    client = SyncClient(http)
    await client.login("tech@example.com", "...")
    await client.pull()
    client.upsert("workflow_steps", step_id, {"done": True})
    await client.sync()
"""

from fieldsync.client.conflicts import ConflictPolicy, client_wins, server_wins
from fieldsync.client.session import SyncClient, SyncError
from fieldsync.client.store import LocalStore, PendingMutation

__all__ = [
    "ConflictPolicy",
    "LocalStore",
    "PendingMutation",
    "SyncClient",
    "SyncError",
    "client_wins",
    "server_wins",
]
