"""WatermelonDB itself at two edges of its sync with a live fieldsync.

- A push the server refuses with 409: records changed on the server between the
  client's pull and its push (`synchronize()` pulls first, then pushes).
- A first sync too big for one pull response: the server answers `has_more: true`
  and the copyable client setup synchronizes again until it is false.

The programs (watermelon/conflict.mjs, watermelon/paging.mjs) run the copyable setup,
watermelon/client.mjs, unchanged and assert from the client's side; these tests set the
server up and check its side through the api.
"""

from __future__ import annotations

from typing import Any

import pytest

from fieldsync.sync.watermelon import pull as watermelon_pull_module
from fieldsync.workflows.templates.service import DEFAULT_STEPS
from tests.clients.conftest import ClientEnv, RunNode
from tests.clients.watermelon_http import building, everything_of, pulled_when
from tests.sync.conftest import create_building

# Records per building: the building, its default workflow and that workflow's steps.
RECORDS_PER_BUILDING = 2 + len(DEFAULT_STEPS)
PAGED_BUILDINGS = 5
# A pull cap far below the records above, so the first sync needs several pulls.
PULL_CAP = 7


async def test_a_push_refused_with_409_applies_nothing_and_the_next_sync_converges(
    client_env: ClientEnv, run_node: RunNode
) -> None:
    run = await run_node(
        "watermelon/conflict.mjs",
        {**client_env.env, "STEPS_PER_WORKFLOW": str(len(DEFAULT_STEPS))},
    )
    result: dict[str, Any] = run.result
    # The same four records: refused whole, then accepted after a pull in between.
    refused, accepted = result["pushes"]
    assert (refused["status"], refused["records"]) == (409, 4)
    assert (accepted["status"], accepted["records"]) == (200, 4)
    assert accepted["lastPulledAt"] > refused["lastPulledAt"]

    http, admin = client_env.http, client_env.admin
    alpha = (await building(http, admin, result["alpha"])).json()
    beta = (await building(http, admin, result["beta"])).json()
    gamma = (await building(http, admin, result["gamma"])).json()
    # The office's city and the tablet's notes; the tablet's name and the office's floors.
    assert (alpha["city"], alpha["notes"]) == ("Basel", "gate code 4411")
    assert (beta["name"], beta["floors"]) == ("Beta (tablet)", 9)
    assert gamma["floors"] == 4
    steps = await http.get(f"/api/v1/workflows/{result['workflow']}/steps", headers=admin.auth)
    assert steps.status_code == 200, steps.text
    [step] = [s for s in steps.json()["items"] if s["id"] == result["step"]]
    assert (step["done"], step["value"]) == (True, "12.5 bar")


async def test_a_first_sync_bigger_than_one_pull_comes_in_parts_until_has_more_is_false(
    client_env: ClientEnv, run_node: RunNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    http, manager = client_env.http, client_env.manager
    made: list[str] = []
    for n in range(PAGED_BUILDINGS):
        made.append((await create_building(http, manager, name=f"Paged {n}"))["id"])
        # A capped pull stops only at a version boundary (one ingested batch). Waiting
        # for each building's records to be pulled before creating the next keeps the
        # buildings out of each other's versions, so the cap can split between them.
        await pulled_when(http, manager, everything_of(made))
    # The live server is served by uvicorn in this test's event loop (`live_url`), and
    # the pull reads the module's cap on every call: the patch reaches it.
    monkeypatch.setattr(watermelon_pull_module, "MAX_CHANGES", PULL_CAP)

    run = await run_node("watermelon/paging.mjs", client_env.env)
    result: dict[str, Any] = run.result
    pulls: list[dict[str, Any]] = result["pulls"]
    assert len(pulls) > 1, pulls
    assert [pull["hasMore"] for pull in pulls] == [True] * (len(pulls) - 1) + [False]
    # A pull that stops early holds at least the cap (then finishes its version).
    assert all(pull["changes"] >= PULL_CAP for pull in pulls[:-1]), pulls
    # Nothing changed while the tablet synced: each record came in exactly one pull.
    assert sum(pull["changes"] for pull in pulls) == PAGED_BUILDINGS * RECORDS_PER_BUILDING
    assert result["counts"] == {
        "buildings": PAGED_BUILDINGS,
        "workflows": PAGED_BUILDINGS,
        "workflow_steps": PAGED_BUILDINGS * len(DEFAULT_STEPS),
    }
    assert sorted(result["buildings"]) == sorted(made)
