"""POST /api/v1/sync/watermelon against the real app: WatermelonDB's push rules, refusals
applying nothing, caps."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson

from fieldsync.contracts.mutations import MAX_MUTATIONS
from tests.api.conftest import assert_problem
from tests.clients.watermelon_http import (
    WATERMELON,
    building,
    ids,
    pulled_when,
    push,
    raw,
    synced_admin_with,
    watermelon_pull,
)
from tests.sync.conftest import Register


async def test_pushed_changes_apply_and_pull_back(
    client: httpx.AsyncClient, register: Register
) -> None:
    admin = await register()
    [existing], timestamp = await synced_admin_with(client, admin, 1)
    new_id, revived_id = str(uuid.uuid4()), str(uuid.uuid4())
    response = await push(
        client,
        admin,
        timestamp,
        {
            "buildings": {
                # created for a new id: created, its local-only columns dropped.
                "created": [
                    {
                        "id": new_id,
                        "name": "Annex",
                        "floors": 2,
                        "local_note": "x",
                        "_status": "created",
                        "_changed": "",
                    },
                    # created for an id the server has: an update.
                    raw(existing, name="Renamed"),
                ],
                # updated for an id the server lacks: created.
                "updated": [{"id": revived_id, "name": "From update", "_status": "updated"}],
                # deleted for an id the server never had: nothing to do.
                "deleted": [str(uuid.uuid4())],
            },
        },
    )
    assert response.status_code == 200, response.text
    assert (await building(client, admin, new_id)).json()["name"] == "Annex"
    assert (await building(client, admin, existing["id"])).json()["name"] == "Renamed"
    assert (await building(client, admin, revived_id)).json()["name"] == "From update"

    # Read-your-writes: the next pull already has them.
    after = await watermelon_pull(client, admin, timestamp)
    updated = {b["id"]: b for b in after["changes"]["buildings"]["updated"]}
    assert {new_id, existing["id"], revived_id} <= set(updated)
    assert "local_note" not in updated[new_id]


async def test_unknown_tables_and_malformed_input_are_refused_whole(
    client: httpx.AsyncClient, register: Register
) -> None:
    admin = await register()
    [existing], timestamp = await synced_admin_with(client, admin, 1)
    renamed = raw(existing, name="Never")
    refused = await push(
        client, admin, timestamp, {"buildings": {"updated": [renamed]}, "photos": {"created": []}}
    )
    assert_problem(refused, 422)
    assert (await building(client, admin, existing["id"])).json()["name"] == existing["name"]

    bad_pushes: list[tuple[dict[str, str], Any]] = [
        ({}, {"buildings": {"updated": [renamed]}}),  # no last_pulled_at
        ({"last_pulled_at": "soon"}, {}),
        ({"last_pulled_at": str(timestamp)}, [1, 2]),
        ({"last_pulled_at": str(timestamp)}, {"buildings": {"created": [{"name": "no id"}]}}),
        ({"last_pulled_at": str(timestamp)}, {"buildings": {"deleted": ["not-a-uuid"]}}),
        ({"last_pulled_at": str(timestamp)}, {"buildings": {"renamed": []}}),
        # One record twice.
        (
            {"last_pulled_at": str(timestamp)},
            {"buildings": {"created": [renamed], "updated": [renamed]}},
        ),
    ]
    for params, body in bad_pushes:
        response = await client.post(
            WATERMELON,
            params=params,
            content=orjson.dumps(body),
            headers={**admin.auth, "Content-Type": "application/json"},
        )
        assert_problem(response, 422)
    not_json = await client.post(
        WATERMELON,
        params={"last_pulled_at": str(timestamp)},
        content=b"{nope",
        headers={**admin.auth, "Content-Type": "application/json"},
    )
    assert 400 <= not_json.status_code < 500
    assert not_json.headers["content-type"].startswith("application/problem+json")

    for params in (
        {"last_pulled_at": "-1"},
        {"last_pulled_at": "1.5"},
        {"last_pulled_at": "9" * 40},
        {"schema_version": "x"},
        {"migration": "{not json"},
        {"migration": '{"from": 1}'},
        {"migration": '{"from": -1, "tables": [], "columns": []}'},
    ):
        response = await client.get(WATERMELON, params=params, headers=admin.auth)
        assert_problem(response, 422)
    assert_problem(await client.get(WATERMELON), 401)


async def test_a_push_is_refused_whole_when_a_record_changed_after_the_pull(
    client: httpx.AsyncClient, register: Register
) -> None:
    admin = await register()
    (changed, untouched), timestamp = await synced_admin_with(client, admin, 2)
    patched = await client.patch(
        f"/api/v1/buildings/{changed['id']}", json={"notes": "server"}, headers=admin.auth
    )
    assert patched.status_code == 200
    await pulled_when(
        client,
        admin,
        lambda b: changed["id"] in ids(b["changes"], "buildings", "updated"),
        last_pulled_at=timestamp,
    )
    new_id = str(uuid.uuid4())
    refused = await push(
        client,
        admin,
        timestamp,
        {
            "buildings": {
                "created": [{"id": new_id, "name": "Not yet"}],
                "updated": [raw(untouched, name="Not yet"), raw(changed, name="Client")],
            }
        },
    )
    problem = assert_problem(refused, 409)
    assert problem["changed"] == [{"table": "buildings", "id": changed["id"]}]
    assert (await building(client, admin, untouched["id"])).json()["name"] == untouched["name"]
    assert (await building(client, admin, changed["id"])).json()["name"] == changed["name"]
    assert (await building(client, admin, new_id)).status_code == 404

    # The client pulls (WatermelonDB keeps its own changed columns over the server's),
    # then pushes again from the new timestamp: accepted.
    pulled = await watermelon_pull(client, admin, timestamp)
    [server_side] = pulled["changes"]["buildings"]["updated"]
    merged_locally = raw(server_side, name="Client")
    accepted = await push(
        client, admin, pulled["timestamp"], {"buildings": {"updated": [merged_locally]}}
    )
    assert accepted.status_code == 200, accepted.text
    merged = (await building(client, admin, changed["id"])).json()
    assert (merged["name"], merged["notes"]) == ("Client", "server")


async def test_updates_of_records_deleted_before_the_pull_stay_deleted(
    client: httpx.AsyncClient, register: Register
) -> None:
    admin = await register()
    [doomed], timestamp = await synced_admin_with(client, admin, 1)
    assert (
        await client.delete(f"/api/v1/buildings/{doomed['id']}", headers=admin.auth)
    ).status_code == 204
    body = await pulled_when(
        client,
        admin,
        lambda b: doomed["id"] in ids(b["changes"], "buildings", "deleted"),
        last_pulled_at=timestamp,
    )
    for changes in (
        {"buildings": {"updated": [raw(doomed, name="Zombie")]}},
        {"buildings": {"created": [raw(doomed, name="Zombie")]}},
        {"buildings": {"deleted": [doomed["id"]]}},
    ):
        response = await push(client, admin, body["timestamp"], changes)
        assert response.status_code == 200, response.text
    assert (await building(client, admin, doomed["id"])).status_code == 404


async def test_a_push_over_the_body_cap_is_refused(
    client: httpx.AsyncClient, register: Register
) -> None:
    admin = await register()
    timestamp = (await watermelon_pull(client, admin))["timestamp"]
    huge = {"buildings": {"created": [{"id": str(uuid.uuid4()), "notes": "x" * 1_100_000}]}}
    assert_problem(await push(client, admin, timestamp, huge), 413)


async def test_a_push_larger_than_one_native_batch_applies_whole(
    client: httpx.AsyncClient, register: Register
) -> None:
    admin = await register()
    _, timestamp = await synced_admin_with(client, admin, 3)
    workflows = (await watermelon_pull(client, admin))["changes"]["workflows"]["created"]
    per_workflow = MAX_MUTATIONS // len(workflows) + 10  # a workflow holds up to 200 steps
    steps = [
        {
            "id": str(uuid.uuid4()),
            "workflow_id": workflow["id"],
            "title": f"Check {n}",
            "position": 100 + n,
            "done": False,
            "_status": "created",
            "_changed": "",
        }
        for workflow in workflows
        for n in range(per_workflow)
    ]
    assert len(steps) > MAX_MUTATIONS
    response = await push(client, admin, timestamp, {"workflow_steps": {"created": steps}})
    assert response.status_code == 200, response.text[:500]
    after = await watermelon_pull(client, admin, timestamp)
    assert {s["id"] for s in steps} <= ids(after["changes"], "workflow_steps", "updated")


async def test_a_record_its_owner_refuses_undoes_the_whole_push(
    client: httpx.AsyncClient, register: Register
) -> None:
    admin = await register()
    (first, second, third), timestamp = await synced_admin_with(client, admin, 3)
    step = (await watermelon_pull(client, admin))["changes"]["workflow_steps"]["created"][0]
    # Only the api can tell latitude 200 is out of bounds, while writing; the records
    # before and after it, and a step bound for the workflows service, are fine.
    refused = await push(
        client,
        admin,
        timestamp,
        {
            "buildings": {
                "updated": [
                    raw(first, city="Before"),
                    raw(second, latitude=200),
                    raw(third, city="After"),
                ]
            },
            "workflow_steps": {"updated": [raw(step, done=True, value="ok")]},
        },
    )
    problem = assert_problem(refused, 422)
    assert [(r["table"], r["id"]) for r in problem["records"]] == [("buildings", second["id"])]
    for record in (first, second, third):
        unchanged = (await building(client, admin, record["id"])).json()
        assert (unchanged["city"], unchanged["latitude"], unchanged["version"]) == (
            record["city"],
            record["latitude"],
            record["version"],
        )
    steps = await client.get(f"/api/v1/workflows/{step['workflow_id']}/steps", headers=admin.auth)
    [same_step] = [s for s in steps.json()["items"] if s["id"] == step["id"]]
    assert (same_step["done"], same_step["version"]) == (False, step["version"])

    # Without the bad value the same push goes through, every record of it.
    accepted = await push(
        client,
        admin,
        timestamp,
        {
            "buildings": {
                "updated": [raw(first, city="Before"), raw(third, city="After")],
            },
            "workflow_steps": {"updated": [raw(step, done=True, value="ok")]},
        },
    )
    assert accepted.status_code == 200, accepted.text
    assert (await building(client, admin, first["id"])).json()["city"] == "Before"
    assert (await building(client, admin, third["id"])).json()["city"] == "After"
