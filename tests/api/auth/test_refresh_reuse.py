"""Refresh-token reuse after the grace revokes the whole session family."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import Register, assert_problem, audit_events, refresh, sign_in

# No grace: any second use of a rotated token is reuse, without the test sleeping.
pytestmark = pytest.mark.settings(refresh_reuse_grace_seconds=0)


async def test_reuse_revokes_the_family(client: httpx.AsyncClient, register: Register) -> None:
    admin = await register()
    other_device = await sign_in(client, admin)
    token_a = admin.refresh_token
    rotated = await refresh(client, token_a)
    assert rotated.status_code == 200, rotated.text
    token_b = rotated.json()["refresh_token"]

    assert_problem(await refresh(client, token_a), 401)  # A replayed: theft assumed
    assert_problem(await refresh(client, token_b), 401)  # so the legitimate B dies too

    events = await audit_events(client, other_device)
    reused = [event for event in events if event["kind"] == "refresh.reused"]
    assert len(reused) == 1
    assert reused[0]["detail"]["session"] == admin.session_id
    assert reused[0]["user_id"] == admin.user_id

    # Only that family: the same user's other session lives on.
    sessions = await client.get("/api/v1/auth/sessions", headers=other_device.auth)
    assert [item["id"] for item in sessions.json()["items"]] == [other_device.session_id]
    assert (await refresh(client, other_device.refresh_token)).status_code == 200


async def test_a_replayed_token_of_a_revoked_family_stays_refused(
    client: httpx.AsyncClient, register: Register
) -> None:
    admin = await register()
    token_b = (await refresh(client, admin.refresh_token)).json()["refresh_token"]
    assert_problem(await refresh(client, admin.refresh_token), 401)
    # Further replays of either token answer 401 and record no second reuse.
    assert_problem(await refresh(client, admin.refresh_token), 401)
    assert_problem(await refresh(client, token_b), 401)
    fresh = await sign_in(client, admin)
    kinds = [event["kind"] for event in await audit_events(client, fresh)]
    assert kinds.count("refresh.reused") == 1
