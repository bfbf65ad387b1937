"""`SyncClient`: sign in, pull, push and listen, keeping a `LocalStore` up to date."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from fieldsync.client.conflicts import ConflictPolicy, server_wins
from fieldsync.client.store import LocalStore, PendingMutation

API = "/api/v1"
MAX_PUSH = 500


class SyncError(Exception):
    """The server refused a request; `status` and the problem document say why."""

    def __init__(self, response: httpx.Response) -> None:
        self.status = response.status_code
        try:
            self.problem: dict[str, Any] = response.json()
        except ValueError:
            self.problem = {"detail": response.text[:200]}
        super().__init__(f"{self.status}: {self.problem.get('detail', '')}")


class SyncClient:
    """One device of one user: its store, its queue of offline edits, its session.

    Network failures leave the queue as it was: the next `push` sends the same
    mutations with the same ids, and the server applies each at most once.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        store: LocalStore | None = None,
        on_conflict: ConflictPolicy = server_wins,
        page_size: int = 500,
    ) -> None:
        self.http = http
        self.store = store or LocalStore()
        self.on_conflict = on_conflict
        self.page_size = page_size
        self.access_token: str | None = None
        self.refresh_token: str | None = None

    # --- session ---------------------------------------------------------------

    async def login(self, email: str, password: str) -> None:
        """Sign in; later requests carry the access token and refresh it when it expires."""
        response = await self.http.post(
            f"{API}/auth/login", json={"email": email, "password": password}
        )
        self._keep_tokens(response)

    def use_tokens(self, access_token: str, refresh_token: str | None = None) -> None:
        """Sign in with tokens obtained elsewhere."""
        self.access_token, self.refresh_token = access_token, refresh_token

    def _keep_tokens(self, response: httpx.Response) -> None:
        if response.status_code != 200:
            raise SyncError(response)
        body = response.json()
        self.access_token, self.refresh_token = body["access_token"], body["refresh_token"]

    async def _call(self, path: str, body: dict[str, Any]) -> httpx.Response:
        response = await self.http.post(path, content=orjson.dumps(body), headers=self._headers())
        if response.status_code == 401 and self.refresh_token is not None:
            refreshed = await self.http.post(
                f"{API}/auth/refresh", json={"refresh_token": self.refresh_token}
            )
            self._keep_tokens(refreshed)
            response = await self.http.post(
                path, content=orjson.dumps(body), headers=self._headers()
            )
        return response

    def _headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if self.access_token is not None:
            headers["authorization"] = f"Bearer {self.access_token}"
        return headers

    # --- local edits -----------------------------------------------------------

    def upsert(self, collection: str, record_id: str, data: dict[str, Any]) -> None:
        """Create or change a record locally; pushed on the next `push`."""
        self.store.edit(collection, record_id, "upsert", data)

    def delete(self, collection: str, record_id: str) -> None:
        """Delete a record locally; pushed on the next `push`."""
        self.store.edit(collection, record_id, "delete", None)

    # --- sync ------------------------------------------------------------------

    async def pull(self) -> int:
        """Pull until up to date; the number of changes received.

        A checkpoint past the server's tombstone horizon (410) discards the local
        copy of the records and pulls everything again; queued edits are kept.
        """
        received = 0
        while True:
            response = await self._call(
                f"{API}/sync/pull", {"checkpoint": self.store.checkpoint, "limit": self.page_size}
            )
            if response.status_code == 410:
                self.store.confirmed.clear()
                self.store.checkpoint = None
                continue
            if response.status_code != 200:
                raise SyncError(response)
            page = orjson.loads(response.content)
            for change in page["changes"]:
                self.store.apply_change(change)
            received += len(page["changes"])
            self.store.checkpoint = page["checkpoint"]
            if not page["has_more"]:
                return received

    async def push(self) -> list[dict[str, Any]]:
        """Push queued edits until none can go further; every result received."""
        results: list[dict[str, Any]] = []
        while True:
            batch = self.store.next_batch(MAX_PUSH)
            if not batch:
                return results
            for mutation in batch:
                mutation.sent = True
            response = await self._call(
                f"{API}/sync/push",
                {
                    "client_id": self.store.client_id,
                    "mutations": [mutation.to_wire() for mutation in batch],
                },
            )
            if response.status_code != 200:
                raise SyncError(response)
            settled = orjson.loads(response.content)["results"]
            for mutation, result in zip(batch, settled, strict=True):
                self._settle(mutation, result)
            results.extend(settled)

    async def sync(self) -> None:
        """Push queued edits, then pull."""
        await self.push()
        await self.pull()

    def _settle(self, mutation: PendingMutation, result: dict[str, Any]) -> None:
        store = self.store
        store.pending.remove(mutation)
        key = (mutation.collection, mutation.id)
        status = result["status"]
        if status == "applied":
            if mutation.op == "delete":
                store.confirmed.pop(key, None)
            elif result.get("version") is not None:
                record = {**store.confirmed.get(key, {"id": mutation.id}), **(mutation.data or {})}
                record["version"] = result["version"]
                store.confirmed[key] = record
        elif status == "conflict":
            server = result.get("record")
            if server is None:
                store.confirmed.pop(key, None)
            else:
                store.confirmed[key] = server
            again = self.on_conflict(mutation.collection, mutation.data, server)
            if again is not None:
                store.last_mutation_id += 1
                store.pending.insert(
                    0,
                    PendingMutation(
                        mutation_id=store.last_mutation_id,
                        collection=mutation.collection,
                        id=mutation.id,
                        op=mutation.op,
                        data=again,
                        base_version=None if server is None else int(server["version"]),
                    ),
                )
        # rejected: dropped; the view falls back to the server's record.
        store.rebase(mutation.collection, mutation.id)

    # --- realtime --------------------------------------------------------------

    async def pokes(self) -> AsyncIterator[str]:
        """Checkpoints announced on the SSE stream; pull when one arrives."""
        async with self.http.stream(
            "GET", f"{API}/sync/stream", headers=self._headers(), timeout=None
        ) as response:
            if response.status_code != 200:
                await response.aread()
                raise SyncError(response)
            event = ""
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event == "poke":
                    yield str(orjson.loads(line[5:])["checkpoint"])
                elif not line:
                    event = ""
