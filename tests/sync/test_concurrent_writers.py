"""Concurrent writers in both owner services while a client pulls: it misses nothing.

A client that only ever pulls forward from its checkpoint must end up with exactly
what a fresh pull returns and what the owners hold. If a change could commit with a
version at or below a checkpoint already handed out, that client would never see it.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from tests.sync.conftest import (
    Register,
    Replica,
    create_building,
    has_workflows,
    pulled_until,
)
from tests.waiting import eventually

BUILDINGS = 6
WRITES_EACH = 8


async def test_a_continuous_puller_misses_no_change(
    client: httpx.AsyncClient, register: Register
) -> None:
    admin = await register()
    buildings = [await create_building(client, admin, floors=0) for _ in range(BUILDINGS)]
    seed = Replica(admin)
    await pulled_until(client, seed, has_workflows(BUILDINGS))
    steps = list(seed.of("workflow_steps").values())

    follower = Replica(admin, checkpoint=seed.checkpoint, records=dict(seed.records))
    writing = True

    async def pull_continuously() -> int:
        pulls = 0
        while writing:
            await follower.pull(client, limit=7)  # small pages: paging under load too
            pulls += 1
        return pulls

    async def patch_building(building: dict[str, Any]) -> None:
        for floors in range(1, WRITES_EACH + 1):
            response = await client.patch(
                f"/api/v1/buildings/{building['id']}", json={"floors": floors}, headers=admin.auth
            )
            assert response.status_code == 200, response.text

    async def patch_step(step: dict[str, Any]) -> None:
        for n in range(WRITES_EACH):
            response = await client.patch(
                f"/api/v1/workflows/{step['workflow_id']}/steps/{step['id']}",
                json={"value": f"reading {n}"},
                headers=admin.auth,
            )
            assert response.status_code == 200, response.text

    async def add_buildings() -> None:
        for _ in range(3):
            await create_building(client, admin, name=f"Late {uuid.uuid4().hex[:4]}")

    puller = asyncio.create_task(pull_continuously())
    await asyncio.gather(
        *(patch_building(b) for b in buildings),
        *(patch_step(s) for s in steps[: BUILDINGS * 2]),
        add_buildings(),
    )
    writing = False
    assert await puller > 0

    def has_last_writes(replica: Replica) -> bool:
        return all(
            replica.of("buildings")[b["id"]]["floors"] == WRITES_EACH for b in buildings
        ) and all(
            replica.of("workflow_steps")[s["id"]]["value"] == f"reading {WRITES_EACH - 1}"
            for s in steps[: BUILDINGS * 2]
        )

    # The owners' last writes reach the replica; a fresh pull shows them all.
    fresh = Replica(admin)
    await pulled_until(
        client, fresh, lambda r: has_workflows(BUILDINGS + 3)(r) and has_last_writes(r)
    )

    async def caught_up() -> bool:
        await follower.pull(client)
        return has_last_writes(follower) and has_workflows(BUILDINGS + 3)(follower)

    await eventually(caught_up)
    # Nothing was skipped: forward-only pulls hold exactly what a fresh pull holds.
    final = Replica(admin)
    await final.pull(client)
    await follower.pull(client)
    assert follower.records == final.records
