"""The `fieldsync` command as a user runs it: real processes, real servers, real signals."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from fieldsync.kit.db.engine import async_url
from fieldsync.kit.embedded.nats import NatsEndpoints, free_port
from tests.processes import FIELDSYNC, Running, clean_env


def demo_workflow_statuses(base_url: str, data_dir: Path) -> set[str]:
    """Statuses of the demo organization's workflows, read through the API as its admin."""
    admin = json.loads((data_dir / "demo-logins.json").read_text())[0]
    login = httpx.post(
        f"{base_url}/api/v1/auth/login",
        json={"email": admin["email"], "password": admin["password"]},
        timeout=30,
    )
    assert login.status_code == 200, login.text
    auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
    buildings = httpx.get(f"{base_url}/api/v1/buildings?limit=200", headers=auth, timeout=30).json()
    assert len(buildings["items"]) == 12
    statuses = set()
    for building in buildings["items"]:
        workflows = httpx.get(
            f"{base_url}/api/v1/buildings/{building['id']}/workflows", headers=auth, timeout=30
        ).json()
        assert len(workflows["items"]) == 1
        statuses.add(workflows["items"][0]["status"])
    return statuses


def pulled_summary(base_url: str, login: dict[str, str], expected: str) -> str:
    """`fieldsync pull` as the user until its summary shows `expected` (the replica
    catches up with the seeding asynchronously); the last summary line."""
    deadline = time.monotonic() + 30
    while True:
        result = subprocess.run(
            [FIELDSYNC, "pull", "--url", base_url, "--email", login["email"]],
            input=login["password"] + "\n",
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        summary = result.stdout.strip().splitlines()[-1]
        if expected in summary or time.monotonic() > deadline:
            return summary
        time.sleep(0.2)


def postmaster_pid(data_dir: Path) -> int | None:
    """The embedded PostgreSQL's pid from its postmaster.pid file."""
    pid_file = data_dir / "postgres" / "postmaster.pid"
    if not pid_file.exists():
        return None
    return int(pid_file.read_text().splitlines()[0])


def assert_gone(pids: list[int]) -> None:
    """Every pid has exited (zombies of already-reaped children count as gone)."""
    deadline = time.monotonic() + 15
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [
            pid
            for pid in alive
            if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        ]
        if alive:
            time.sleep(0.1)
    assert alive == [], f"processes left behind: {alive}"


async def sql(url: str, statement: str) -> object:
    engine = create_async_engine(async_url(url))
    try:
        async with engine.begin() as connection:
            result = await connection.execute(text(statement))
            return result.scalar() if result.returns_rows else None
    finally:
        await engine.dispose()


@pytest.fixture
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # A short path: PostgreSQL's Unix socket lives here and socket paths are capped at 107 bytes.
    return tmp_path_factory.mktemp("up")


def test_up_serves_restarts_on_the_same_data_and_leaves_nothing_behind(data_dir: Path) -> None:
    port = free_port()
    args = ["up", "--data-dir", str(data_dir), "--port", str(port)]

    first = Running(args, clean_env())
    try:
        first.wait_for_line("is up")
        ready = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=10)
        assert ready.status_code == 200
        assert ready.json()["checks"] == {
            "database:api": "ok",
            "database:sync": "ok",
            "database:workflows": "ok",
            "nats": "ok",
        }
        assert any(f"http://127.0.0.1:{port}/docs" in line for line in first.lines)
        # The demo organization was seeded through the API and its logins printed.
        assert any("demo logins" in line for line in first.lines)
        assert (data_dir / "demo-logins.json").stat().st_mode & 0o777 == 0o600
        assert demo_workflow_statuses(f"http://127.0.0.1:{port}", data_dir) == {
            "open",
            "in_progress",
            "done",
            "cancelled",
        }
        # The sync service serves the demo data too: a technician's device holds their
        # six buildings, each with its workflow.
        technician = json.loads((data_dir / "demo-logins.json").read_text())[2]
        assert technician["role"] == "technician"
        assert "holding buildings: 6, workflows: 6" in pulled_summary(
            f"http://127.0.0.1:{port}", technician, "holding buildings: 6, workflows: 6"
        )
        docs = httpx.get(f"http://127.0.0.1:{port}/docs", timeout=10)
        assert docs.status_code == 200
        database_url = f"postgresql://postgres@/fieldsync_api?host={data_dir / 'postgres'}"
        asyncio.run(sql(database_url, "CREATE TABLE kept_across_restarts (id int)"))
        started = [process.pid for process in first.descendants()]
        postgres = postmaster_pid(data_dir)
        assert postgres is not None
    finally:
        code = first.stop(signal.SIGINT)
    assert code == 0, "\n".join(first.lines)
    assert_gone([*started, postgres])

    second = Running(args, clean_env())
    try:
        second.wait_for_line("is up")
        kept = asyncio.run(sql(database_url, "SELECT to_regclass('kept_across_restarts')::text"))
        assert kept == "kept_across_restarts"
        started = [process.pid for process in second.descendants()]
        postgres = postmaster_pid(data_dir)
    finally:
        code = second.stop(signal.SIGTERM)
    assert code == 0, "\n".join(second.lines)
    assert_gone([*started, postgres])


def one_line_failure(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    result = subprocess.run(
        [FIELDSYNC, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    assert len(lines) == 1, result.stderr
    return result.returncode, lines[0]


def test_bad_port_fails_with_one_line() -> None:
    code, line = one_line_failure(["up"], clean_env(FIELDSYNC_HTTP_PORT="abc"))
    assert code == 2
    assert line.startswith("fieldsync: invalid configuration: FIELDSYNC_HTTP_PORT:")


def test_run_without_configuration_names_what_is_missing() -> None:
    code, line = one_line_failure(["run", "api"], clean_env())
    assert code == 1
    assert "FIELDSYNC_NATS_URL" in line
    assert "FIELDSYNC_API_DATABASE_URL" in line


def test_run_api_without_a_signing_key_names_the_variable(
    nats_server: NatsEndpoints, api_database_url: str
) -> None:
    env = clean_env(FIELDSYNC_NATS_URL=nats_server.url, FIELDSYNC_API_DATABASE_URL=api_database_url)
    code, line = one_line_failure(["run", "api"], env)
    assert code == 1
    assert "FIELDSYNC_JWT_PRIVATE_KEY_FILE is required" in line


def test_unreachable_nats_fails_with_one_line(
    api_database_url: str, signing_key_file: Path
) -> None:
    unused = free_port()
    env = clean_env(
        FIELDSYNC_NATS_URL=f"nats://127.0.0.1:{unused}",
        FIELDSYNC_API_DATABASE_URL=api_database_url,
        FIELDSYNC_JWT_PRIVATE_KEY_FILE=str(signing_key_file),
    )
    code, line = one_line_failure(["run", "api"], env)
    assert code == 1
    assert f"cannot connect to NATS at nats://127.0.0.1:{unused}" in line


def test_run_refuses_nats_it_cannot_verify(
    nats_server: NatsEndpoints, api_database_url: str, signing_key_file: Path
) -> None:
    env = clean_env(
        FIELDSYNC_NATS_URL=nats_server.url,
        FIELDSYNC_API_DATABASE_URL=api_database_url,
        FIELDSYNC_JWT_PRIVATE_KEY_FILE=str(signing_key_file),
    )
    code, line = one_line_failure(["run", "api"], env)
    assert code == 1
    assert "FIELDSYNC_NATS_MONITOR_URL" in line
    assert "FIELDSYNC_UNSAFE_NATS=1" in line


def test_run_serves_one_service_against_configured_servers(
    nats_server: NatsEndpoints, api_database_url: str, signing_key_file: Path
) -> None:
    port = free_port()
    env = clean_env(
        FIELDSYNC_JWT_PRIVATE_KEY_FILE=str(signing_key_file),
        FIELDSYNC_NATS_URL=nats_server.url,
        FIELDSYNC_NATS_MONITOR_URL=nats_server.monitor_url,
        FIELDSYNC_API_DATABASE_URL=api_database_url,
        FIELDSYNC_HTTP_PORT=str(port),
    )
    replica = Running(["run", "api"], env)
    try:
        replica.wait_for_line("Uvicorn running")
        ready = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=10)
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"database:api": "ok", "nats": "ok"}
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        assert (
            'fieldsync_http_requests_total{method="GET",route="/health/ready",status="200"}'
            in metrics
        )
    finally:
        code = replica.stop(signal.SIGTERM)
    assert code == 0, "\n".join(replica.lines)
    # Configured mode logs JSON lines that carry the request id.
    assert any('"request_id"' in line and '"/health/ready"' in line for line in replica.lines)


def test_up_uses_configured_servers_instead_of_embedded_ones(
    data_dir: Path,
    nats_server: NatsEndpoints,
    api_database_url: str,
    workflows_database_url: str,
    sync_database_url: str,
) -> None:
    port = free_port()
    env = clean_env(
        FIELDSYNC_NATS_URL=nats_server.url,
        FIELDSYNC_NATS_MONITOR_URL=nats_server.monitor_url,
        FIELDSYNC_API_DATABASE_URL=api_database_url,
        FIELDSYNC_WORKFLOWS_DATABASE_URL=workflows_database_url,
        FIELDSYNC_SYNC_DATABASE_URL=sync_database_url,
    )
    args = ["up", "--no-demo", "--data-dir", str(data_dir), "--port", str(port)]
    configured = Running(args, env)
    try:
        configured.wait_for_line("is up")
        ready = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=10)
        assert ready.json()["checks"] == {
            "database:api": "ok",
            "database:sync": "ok",
            "database:workflows": "ok",
            "nats": "ok",
        }
        started = [process.name() for process in configured.descendants()]
    finally:
        code = configured.stop(signal.SIGINT)
    assert code == 0, "\n".join(configured.lines)
    assert "nats-server" not in started
    assert not (data_dir / "postgres").exists()
    assert not (data_dir / "nats").exists()
