"""Each building ends with exactly one default workflow, whether or not workflows answers.

api and workflows run as separate runtimes on the real NATS server: first with the
workflows service down (the building is created `pending`, through NATS "no
responders" rather than a timeout), then with it back (its CHANGES consumer creates
the workflow; the direct request path finds the same one).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
from prometheus_client import REGISTRY

from fieldsync.contracts import workflows as contract
from fieldsync.kit.runtime import Endpoints, Runtime
from tests.api.conftest import Register
from tests.workflows.support import eventually


def no_responders_count() -> float:
    value = REGISTRY.get_sample_value(
        "fieldsync_nats_request_duration_seconds_count",
        {"subject": contract.CREATE, "outcome": "no-responders"},
    )
    return value or 0.0


async def workflows_of(
    client: httpx.AsyncClient, auth: dict[str, str], building_id: str
) -> list[object]:
    response = await client.get(f"/api/v1/buildings/{building_id}/workflows", headers=auth)
    if response.status_code == 503:  # the workflows handlers are still subscribing
        return []
    assert response.status_code == 200, response.text
    items: list[object] = response.json()["items"]
    return items


async def test_pending_while_down_then_exactly_one_workflow(
    client: httpx.AsyncClient,
    register: Register,
    start_workflows: Callable[[], Awaitable[Runtime]],
    endpoints: Endpoints,
) -> None:
    monitor_url = endpoints.nats_monitor_url
    assert monitor_url is not None
    admin = await register()
    before = no_responders_count()
    created = await client.post(
        "/api/v1/buildings", json={"name": "Offline Depot"}, headers=admin.auth
    )
    assert created.status_code == 201, created.text
    building = created.json()
    assert building["workflow"] is None
    assert building["workflow_status"] == "pending"
    # "No responders", answered at once, not a wait for the 2 s deadline.
    assert no_responders_count() == before + 1

    await start_workflows()
    await eventually(lambda: _has_workflows(client, admin.auth, building["id"], 1), timeout=60)

    # With the service up, a new building gets its workflow in the response, and the
    # change event that follows does not add a second one.
    second = await client.post(
        "/api/v1/buildings", json={"name": "Online Depot"}, headers=admin.auth
    )
    assert second.status_code == 201, second.text
    body = second.json()
    assert body["workflow_status"] == "created"
    assert body["workflow"]["name"] == "Initial inspection"
    # Once the workflows service's consumer has acknowledged every change, both paths
    # have run for the second building.
    await eventually(lambda: _consumer_caught_up(monitor_url), timeout=60)
    assert len(await workflows_of(client, admin.auth, body["id"])) == 1
    assert len(await workflows_of(client, admin.auth, building["id"])) == 1


async def _has_workflows(
    client: httpx.AsyncClient, auth: dict[str, str], building_id: str, count: int
) -> bool:
    return len(await workflows_of(client, auth, building_id)) == count


async def _consumer_caught_up(monitor_url: str) -> bool:
    """The workflows service's building consumer has nothing pending or unacknowledged."""
    async with httpx.AsyncClient() as http:
        jsz = (await http.get(f"{monitor_url}/jsz", params={"consumers": "true"})).json()
    for account in jsz.get("account_details", []):
        for stream in account.get("stream_detail", []):
            for consumer in stream.get("consumer_detail", []) or []:
                if consumer.get("name") == "workflows-buildings":
                    return consumer["num_pending"] == 0 and consumer["num_ack_pending"] == 0
    return False
