"""WatermelonDB itself (LokiJS in memory, `synchronize()`) syncing with a live fieldsync.

The programs under watermelon/ assert convergence from the clients' side; these tests
then check the server's side through the api.
"""

from __future__ import annotations

from tests.clients.conftest import ClientEnv, RunNode


async def test_two_clients_edit_offline_and_converge(
    client_env: ClientEnv, run_node: RunNode
) -> None:
    run = await run_node("watermelon/two_clients.mjs", client_env.env)
    ids = run.result
    http, admin = client_env.http, client_env.admin
    alpha = await http.get(f"/api/v1/buildings/{ids['alpha']}", headers=admin.auth)
    assert alpha.status_code == 200
    # Concurrent edits: each client's own columns won, the last push last.
    assert (alpha.json()["name"], alpha.json()["city"], alpha.json()["notes"]) == (
        "Alpha B",
        "Geneva",
        "from A",
    )
    gamma = await http.get(f"/api/v1/buildings/{ids['gamma']}", headers=admin.auth)
    assert gamma.json()["name"] == "Gamma"
    beta = await http.get(f"/api/v1/buildings/{ids['beta']}", headers=admin.auth)
    assert beta.status_code == 404


async def test_a_technician_gets_assigned_buildings_only_and_loses_them_on_unassign(
    client_env: ClientEnv, run_node: RunNode
) -> None:
    run = await run_node("watermelon/technician.mjs", client_env.env)
    ids = run.result
    http, admin = client_env.http, client_env.admin
    # The technician's result stayed on the server after their assignment ended.
    pulled = await http.post("/api/v1/sync/pull", json={"checkpoint": None}, headers=admin.auth)
    steps = {
        change["id"]: change["data"]
        for change in pulled.json()["changes"]
        if change["collection"] == "workflow_steps"
    }
    assert (steps[ids["step"]]["done"], steps[ids["step"]]["value"]) == (True, "7 bar")
    assignees = await http.get(f"/api/v1/buildings/{ids['assigned']}/assignees", headers=admin.auth)
    assert assignees.status_code == 200
    assert client_env.technician.user_id not in assignees.text
