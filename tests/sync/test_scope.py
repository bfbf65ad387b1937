"""Technicians sync only their assigned buildings; assignments move records in and out."""

from __future__ import annotations

import httpx

from fieldsync.workflows.templates.service import DEFAULT_STEPS
from tests.sync.conftest import CreateUser, Register, Replica, create_building, pulled_until
from tests.waiting import eventually


def assignee_url(building_id: str, user_id: str) -> str:
    return f"/api/v1/buildings/{building_id}/assignees/{user_id}"


async def test_technician_pulls_assigned_buildings_and_sees_move_in_and_move_out(
    client: httpx.AsyncClient, register: Register, create_user: CreateUser
) -> None:
    admin = await register()
    technician = await create_user(admin, "technician")
    assigned = await create_building(client, admin, name="Assigned")
    other = await create_building(client, admin, name="Other")
    put = await client.put(assignee_url(assigned["id"], technician.user_id), headers=admin.auth)
    assert put.status_code == 204

    manager_view = Replica(admin)
    await pulled_until(
        client,
        manager_view,
        lambda r: (
            len(r.of("workflows")) == 2 and len(r.of("workflow_steps")) == 2 * len(DEFAULT_STEPS)
        ),
    )
    workflow_of = {w["building_id"]: w["id"] for w in manager_view.of("workflows").values()}
    steps_of = {
        building: {
            s["id"] for s in manager_view.of("workflow_steps").values() if s["workflow_id"] == wid
        }
        for building, wid in workflow_of.items()
    }

    tech_view = Replica(technician)
    await pulled_until(
        client, tech_view, lambda r: len(r.of("workflow_steps")) == len(DEFAULT_STEPS)
    )
    assert set(tech_view.of("buildings")) == {assigned["id"]}
    assert set(tech_view.of("workflows")) == {workflow_of[assigned["id"]]}
    assert set(tech_view.of("workflow_steps")) == steps_of[assigned["id"]]

    # Move-in: the other building arrives whole, with its workflow and steps.
    put = await client.put(assignee_url(other["id"], technician.user_id), headers=admin.auth)
    assert put.status_code == 204
    await pulled_until(client, tech_view, lambda r: other["id"] in r.of("buildings"))
    assert set(tech_view.of("workflows")) == set(workflow_of.values())
    assert set(tech_view.of("workflow_steps")) == steps_of[assigned["id"]] | steps_of[other["id"]]

    # Move-out: building, workflow and steps arrive as deletes.
    removed = await client.delete(
        assignee_url(assigned["id"], technician.user_id), headers=admin.auth
    )
    assert removed.status_code == 204
    deletes: list[dict[str, object]] = []

    async def moved_out() -> bool:
        deletes.extend(c for c in await tech_view.pull(client) if c["op"] == "delete")
        return assigned["id"] not in tech_view.of("buildings")

    await eventually(moved_out)
    deleted_ids = {change["id"] for change in deletes}
    assert {assigned["id"], workflow_of[assigned["id"]]} | steps_of[assigned["id"]] <= deleted_ids
    assert set(tech_view.of("buildings")) == {other["id"]}
    assert set(tech_view.of("workflows")) == {workflow_of[other["id"]]}
    assert set(tech_view.of("workflow_steps")) == steps_of[other["id"]]

    # A technician starting fresh gets only what is assigned now, and no deletes.
    fresh = Replica(technician)
    first = await fresh.pull(client)
    assert all(change["op"] == "upsert" for change in first)
    assert fresh.records == tech_view.records
