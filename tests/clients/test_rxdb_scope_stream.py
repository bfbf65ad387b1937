"""The RxDB endpoints over HTTP: a technician's scope, and pullStream."""

from __future__ import annotations

from fieldsync.workflows.templates.service import DEFAULT_STEPS
from tests.clients.conftest import ClientEnv
from tests.clients.rxdb.wire import (
    WORKFLOW_BACKLOG_SECONDS,
    assignee_url,
    building,
    changed,
    created,
    is_problem,
    pull,
    pull_all,
    push,
    sse_data,
    url,
)
from tests.waiting import eventually


async def test_a_technician_pulls_assigned_buildings_and_a_move_out_as_deletes(
    client_env: ClientEnv,
) -> None:
    http, admin, technician = client_env.http, client_env.admin, client_env.technician
    assigned, other = building("Assigned"), building("Other")
    assert await push(http, admin, [created(assigned), created(other)]) == []
    put = await http.put(assignee_url(assigned["id"], technician.user_id), headers=admin.auth)
    assert put.status_code == 204

    async def sees(expected: dict[str, bool]) -> bool:
        pulled = await pull_all(http, technician)
        return {i: d["_deleted"] for i, d in pulled.items()} == expected

    await eventually(lambda: sees({assigned["id"]: False}))

    # Its workflow and steps come along; the other building's never do.
    async def has_workflow_and_steps() -> bool:
        workflows = await pull_all(http, technician, "workflows")
        steps = await pull_all(http, technician, "workflow_steps")
        return [w["building_id"] for w in workflows.values()] == [assigned["id"]] and len(
            steps
        ) == len(DEFAULT_STEPS)

    # The workflows service makes default workflows in the order buildings were made:
    # earlier tests' buildings (a thousand of them) may still be ahead of this one.
    await eventually(has_workflow_and_steps, timeout=WORKFLOW_BACKLOG_SECONDS)
    steps = await pull_all(http, technician, "workflow_steps")
    assert all(not s["_deleted"] for s in steps.values())

    # A technician may tick a step, not change a building: 403, nothing written.
    step = next(iter(steps.values()))
    assert await push(http, technician, [changed(step, done=True)], "workflow_steps") == []
    ticked = (await pull_all(http, technician, "workflow_steps"))[step["id"]]
    assert ticked["done"] is True
    # A delete without an assumed state, of a document in scope: it conflicts.
    blind = created({"id": step["id"], "_deleted": True})
    assert await push(http, technician, [blind], "workflow_steps") == [ticked]
    master = (await pull_all(http, technician))[assigned["id"]]
    refused = await http.post(
        url("buildings", "push"), json=[changed(master, name="Mine")], headers=technician.auth
    )
    assert is_problem(refused, 403), refused.text
    assert refused.json()["rejected"][0]["id"] == assigned["id"]
    assert (await pull_all(http, admin))[assigned["id"]]["name"] == "Assigned"

    removed = await http.delete(
        assignee_url(assigned["id"], technician.user_id), headers=admin.auth
    )
    assert removed.status_code == 204
    await eventually(lambda: sees({assigned["id"]: True}))
    gone_steps = await pull_all(http, technician, "workflow_steps")
    assert gone_steps
    assert all(s["_deleted"] for s in gone_steps.values())
    # A write to a document outside the scope conflicts with its deletion, and nothing
    # of the document is revealed (a delete without an assumed state included).
    answer = await push(http, technician, [changed(step, done=False)], "workflow_steps")
    assert answer == [{"id": step["id"], "_deleted": True}]
    blind = created({"id": step["id"], "_deleted": True})
    assert await push(http, technician, [blind], "workflow_steps") == [
        {"id": step["id"], "_deleted": True}
    ]


async def test_pull_stream_sends_resync_then_other_clients_changes(client_env: ClientEnv) -> None:
    http, admin, manager = client_env.http, client_env.admin, client_env.manager
    async with http.stream(
        "GET", url("buildings", "pullStream"), params={"access_token": admin.access_token}
    ) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.aiter_lines()
        assert await sse_data(lines) == "RESYNC"
        hall = building("Hall")
        assert await push(http, manager, [created(hall)]) == []
        event = await sse_data(lines)
        # Steps and workflows the new building brings are other collections' streams.
        assert [d["id"] for d in event["documents"]] == [hall["id"]]
        assert event["documents"][0]["_deleted"] is False
        assert event["checkpoint"] == {"id": hall["id"], "lwt": event["checkpoint"]["lwt"]}
        # The event's checkpoint is a pull checkpoint: nothing of this collection after it.
        after = await pull(http, admin, **event["checkpoint"])
        assert after["documents"] == []


async def test_pull_stream_moves_buildings_in_and_out_of_a_technicians_scope(
    client_env: ClientEnv,
) -> None:
    http, admin, technician = client_env.http, client_env.admin, client_env.technician
    site = building("Site")
    assert await push(http, admin, [created(site)]) == []
    async with http.stream(
        "GET", url("buildings", "pullStream"), params={"access_token": technician.access_token}
    ) as stream:
        lines = stream.aiter_lines()
        assert await sse_data(lines) == "RESYNC"
        assigned = await http.put(assignee_url(site["id"], technician.user_id), headers=admin.auth)
        assert assigned.status_code == 204
        moved_in = await sse_data(lines)
        assert [(d["id"], d["_deleted"]) for d in moved_in["documents"]] == [(site["id"], False)]
        removed = await http.delete(
            assignee_url(site["id"], technician.user_id), headers=admin.auth
        )
        assert removed.status_code == 204
        moved_out = await sse_data(lines)
        assert moved_out["documents"] == [
            {"id": site["id"], "version": moved_in["documents"][0]["version"], "_deleted": True}
        ]
        assert moved_out["checkpoint"]["lwt"] > moved_in["checkpoint"]["lwt"]
