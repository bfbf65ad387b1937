"""The RxDB endpoints over HTTP: pull and push, edge by edge.

The Node programs (test_rxdb.py) show the real RxDB library converging; these tests
pin the wire format and every refusal a client can meet.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from fieldsync.kit.runtime import Runtime
from fieldsync.sync.rxdb.schemas import SCHEMA_VERSIONS
from fieldsync.sync.tombstones import purge_once
from tests.clients.conftest import ClientEnv
from tests.clients.rxdb.wire import (
    building,
    changed,
    created,
    is_problem,
    pull,
    pull_all,
    push,
    url,
)


async def test_pull_pages_in_lwt_id_order_strictly_after_the_checkpoint(
    client_env: ClientEnv,
) -> None:
    http, admin = client_env.http, client_env.admin
    docs = [building(f"B{n}") for n in range(3)]
    assert await push(http, admin, [created(d) for d in docs]) == []

    first = await pull(http, admin, limit=2)
    second = await pull(http, admin, limit=2, **first["checkpoint"])
    pulled = first["documents"] + second["documents"]
    assert sorted(d["id"] for d in pulled) == sorted(d["id"] for d in docs)
    keys = [(p["checkpoint"]["lwt"], p["checkpoint"]["id"]) for p in (first, second)]
    assert keys == sorted(keys)
    assert len(second["documents"]) == 1
    assert first["checkpoint"]["id"] == first["documents"][-1]["id"]
    for document in pulled:
        assert document["_deleted"] is False
        assert document["version"] == 1
        assert not {"_meta", "_rev", "_attachments"} & set(document)
        assert document["city"] == "Bern"
        assert document["updated_at"]

    # The same place by RxDB-server's parameter names; an empty page echoes the checkpoint.
    aliased = await pull(
        http,
        admin,
        batchSize=2,
        updatedAt=first["checkpoint"]["lwt"],
        id=first["checkpoint"]["id"],
        **{key: value for key, value in first["checkpoint"].items() if key == "since"},
    )
    assert aliased == second
    empty = await pull(http, admin, limit=10, **second["checkpoint"])
    assert empty == {"documents": [], "checkpoint": second["checkpoint"]}


async def test_a_replication_from_scratch_outlives_a_purge_and_a_stale_one_is_gone(
    client_env: ClientEnv, runtime: Runtime
) -> None:
    http, admin = client_env.http, client_env.admin
    kept, doomed = building("Kept"), building("Doomed")
    assert await push(http, admin, [created(kept)]) == []
    stale = (await pull(http, admin, limit=1000))["checkpoint"]
    assert await push(http, admin, [created(doomed)]) == []
    master = (await pull_all(http, admin))[doomed["id"]]
    assert await push(http, admin, [changed(master, _deleted=True)]) == []
    assert await purge_once(runtime.databases["sync"], horizon_seconds=0) > 0

    # From scratch, a page at a time: the checkpoints carry `since` (the version the
    # replication started at) until they pass it, so the purge does not stop it.
    documents: dict[str, dict[str, Any]] = {}
    checkpoint: dict[str, Any] = {"lwt": 0, "id": ""}
    checkpoints = []
    while (page := await pull(http, admin, limit=1, **checkpoint))["documents"]:
        documents.update({d["id"]: d for d in page["documents"]})
        checkpoint = page["checkpoint"]
        checkpoints.append(checkpoint)
    assert checkpoints[0]["since"] > checkpoints[0]["lwt"]
    assert documents[kept["id"]]["_deleted"] is False
    assert documents.get(doomed["id"], {"_deleted": True})["_deleted"] is True

    # A client that replicated before the delete and missed it must start over.
    gone = await http.get(url("buildings", "pull"), params=stale, headers=admin.auth)
    assert is_problem(gone, 410), gone.text
    assert gone.json()["type"] == "urn:fieldsync:problem:gone"


async def test_push_writes_on_the_assumed_version_and_answers_conflicts(
    client_env: ClientEnv,
) -> None:
    http, admin = client_env.http, client_env.admin
    depot = building("Depot")
    assert await push(http, admin, [created(depot)]) == []
    # Read-your-writes: the very next pull has it, with the server's fields.
    master = (await pull_all(http, admin))[depot["id"]]
    assert (master["name"], master["version"]) == ("Depot", 1)

    rename = changed(master, name="Depot North", _deleted=False)
    assert await push(http, admin, [rename]) == []
    current = (await pull_all(http, admin))[depot["id"]]
    assert (current["name"], current["version"]) == ("Depot North", 2)

    # Made on version 1 but the server is at 2: the conflict carries the server's document.
    stale = changed(master, floors=9)
    assert await push(http, admin, [stale]) == [current]
    # No assumed state for an existing document: a conflict, and nothing is written.
    assert await push(http, admin, [created({**depot, "name": "Imposter"})]) == [current]
    assert await push(http, admin, [created({**current, "_deleted": True})]) == [current]
    assert (await pull_all(http, admin))[depot["id"]]["version"] == 2

    # A delete on the current version is written; pulls then give the tombstone.
    assert await push(http, admin, [changed(current, _deleted=True)]) == []
    gone = (await pull_all(http, admin))[depot["id"]]
    assert gone == {"id": depot["id"], "version": 3, "_deleted": True}
    # An update of a deleted document conflicts with the tombstone.
    assert await push(http, admin, [changed(current, name="Back")]) == [gone]


async def test_an_edit_before_the_create_was_pulled_back_is_based_on_version_1(
    client_env: ClientEnv,
) -> None:
    http, admin, manager = client_env.http, client_env.admin, client_env.manager
    # RxDB's assumed master state after its own create is the document it pushed, with
    # no `version`: the server wrote it as version 1.
    lab = building("Lab")
    assert await push(http, admin, [created(lab)]) == []
    assert await push(http, admin, [changed(lab, floors=4)]) == []
    current = (await pull_all(http, admin))[lab["id"]]
    assert (current["floors"], current["version"]) == (4, 2)
    # Once someone else changed it, the same assumption conflicts.
    other = building("Annex")
    assert await push(http, manager, [created(other)]) == []
    master = (await pull_all(http, admin))[other["id"]]
    assert await push(http, admin, [changed(master, name="Annex 2")]) == []
    answer = await push(http, manager, [changed(other, floors=7)])
    assert [(d["name"], d["version"]) for d in answer] == [("Annex 2", 2)]


async def test_a_replayed_push_settles_without_writing_twice(client_env: ClientEnv) -> None:
    http, admin = client_env.http, client_env.admin
    store = building("Store")
    batch = [created(store)]
    assert await push(http, admin, batch) == []
    assert await push(http, admin, batch) == []  # the same push again: answered the same
    master = (await pull_all(http, admin))[store["id"]]
    update = [changed(master, floors=5)]
    assert await push(http, admin, update) == []
    assert await push(http, admin, update) == []
    after = (await pull_all(http, admin))[store["id"]]
    assert (after["floors"], after["version"]) == (5, 2)

    # The same row inside another batch: it conflicts with a document that already
    # holds its change (RxDB's conflict handler settles it), and nothing is written.
    other = building("Other")
    answer = await push(http, admin, [*update, created(other)])
    assert answer == [after]
    assert (await pull_all(http, admin))[store["id"]]["version"] == 2


async def test_a_push_of_1000_documents_is_accepted_and_pulls_are_capped(
    client_env: ClientEnv,
) -> None:
    http, admin = client_env.http, client_env.admin
    rows = [created(building(f"Bulk {n}", notes="n" * 60)) for n in range(1000)]
    body = json.dumps(rows).encode()
    assert 150_000 < len(body) < 1_048_576
    response = await http.post(
        url("buildings", "push"),
        content=body,
        headers={**admin.auth, "content-type": "application/json"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    assert response.json() == []
    assert await push(http, admin, [created(building("One more"))]) == []

    page = await pull(http, admin, limit=5000)
    assert len(page["documents"]) == 1000
    rest = await pull(http, admin, limit=5000, **page["checkpoint"])
    assert len(rest["documents"]) == 1
    assert len(await pull_all(http, admin)) == 1001


async def test_a_document_twice_in_a_large_push_is_applied_in_order(
    client_env: ClientEnv,
) -> None:
    """Chunks of a push go to the owners side by side only when no document repeats."""
    http, admin = client_env.http, client_env.admin
    repeated = building("First")
    rows = [created(repeated)]
    rows += [created(building(f"Filler {n}")) for n in range(499)]
    rows.append(created({**repeated, "name": "Second"}))  # in the next chunk of 500

    answer = await push(http, admin, rows)

    # In order: the first create wrote it, so the second conflicts with what it wrote.
    assert [(document["id"], document["name"]) for document in answer] == [
        (repeated["id"], "First")
    ]
    assert (await pull_all(http, admin))[repeated["id"]]["name"] == "First"


async def test_schema_versions_tokens_and_collections_are_checked(
    client_env: ClientEnv, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    http, admin = client_env.http, client_env.admin
    newer = await http.get(url("buildings", "pull", 1), headers=admin.auth)
    assert is_problem(newer, 404)
    # Once the server serves version 1, a client still on version 0 must migrate first.
    monkeypatch.setitem(SCHEMA_VERSIONS, "buildings", 1)
    old = await http.get(url("buildings", "pull", 0), headers=admin.auth)
    assert is_problem(old, 426), old.text
    assert old.json()["served_version"] == 1
    old_push = await http.post(url("buildings", "push", 0), json=[], headers=admin.auth)
    assert is_problem(old_push, 426)
    assert (await http.get(url("buildings", "pull", 1), headers=admin.auth)).status_code == 200
    monkeypatch.undo()
    unknown = await http.get(url("assignments", "pull"), headers=admin.auth)
    assert is_problem(unknown, 404)

    assert runtime.token_verifier is not None
    assert runtime.token_signer is not None
    caller = runtime.token_verifier.verify(admin.access_token)
    expired = runtime.token_signer.issue(caller, now=time.time() - 86_400)
    stale = {"Authorization": f"Bearer {expired}"}
    for response in (
        await http.get(url("buildings", "pull"), headers=stale),
        await http.post(url("buildings", "push"), json=[], headers=stale),
        await http.get(url("buildings", "pullStream"), params={"access_token": expired}),
        await http.get(url("buildings", "pull")),
    ):
        assert is_problem(response, 401), response.text
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_malformed_requests_are_422_problems(client_env: ClientEnv) -> None:
    http, admin = client_env.http, client_env.admin
    some_id = str(uuid.uuid4())
    bodies: list[Any] = [
        {"newDocumentState": building("Not in an array")},
        [1],
        [{"assumedMasterState": None}],
        [{"newDocumentState": building("x"), "extra": 1}],
        [{"newDocumentState": {"id": "not-a-uuid", "name": "x"}}],
        [{"newDocumentState": {"id": 7, "name": "x"}}],
        [{"newDocumentState": {"id": some_id, "name": "x", "_deleted": "no"}}],
        [
            {
                "newDocumentState": {"id": some_id},
                "assumedMasterState": {"id": some_id, "version": "2"},
            }
        ],
        [
            {
                "newDocumentState": {"id": some_id},
                "assumedMasterState": {"id": str(uuid.uuid4()), "version": 1},
            }
        ],
        [created(building("x")) for _ in range(2001)],
    ]
    for body in bodies:
        response = await http.post(url("buildings", "push"), json=body, headers=admin.auth)
        assert is_problem(response, 422), (
            body if len(str(body)) < 300 else "2001 rows",
            response.text,
        )
    not_json = await http.post(
        url("buildings", "push"),
        content=b"[{",
        headers={**admin.auth, "content-type": "application/json"},
    )
    assert not_json.status_code in (400, 422)
    assert is_problem(not_json, not_json.status_code)
    # A value the owner refuses: 422 naming the row; nothing of it is written.
    bad = building("Bad", floors=-3)
    refused = await http.post(url("buildings", "push"), json=[created(bad)], headers=admin.auth)
    assert is_problem(refused, 422)
    assert refused.json()["rejected"][0]["id"] == bad["id"]
    assert bad["id"] not in await pull_all(http, admin)

    for params in ({"lwt": -1}, {"lwt": "soon"}, {"id": "nope"}, {"limit": 0}, {"batchSize": "x"}):
        response = await http.get(url("buildings", "pull"), params=params, headers=admin.auth)
        assert is_problem(response, 422), (params, response.text)
