"""Real client libraries (WatermelonDB, RxDB) syncing with a live fieldsync.

The Node programs under this folder are run by pytest against a fieldsync served on a
real socket (api, workflows and sync in this process, as `fieldsync up` hosts them).
Fixtures a test module uses:

- `client_env`: a fresh organization (admin, manager, technician, signed in) and the
  environment a Node program reads: `BASE_URL`, `ADMIN_TOKEN`, `MANAGER_TOKEN`,
  `TECHNICIAN_TOKEN`, `ADMIN_ID`, `MANAGER_ID`, `TECHNICIAN_ID`.
- `run_node(script, env=..., args=...)`: runs `tests/clients/<script>` with Node and
  returns its exit status, output and the JSON object on its last stdout line; fails
  the test (showing the output) when the program exits non-zero, unless `check=False`.

Node >= 20 and npm must be installed (a missing one fails the run, never skips it);
`npm ci` runs whenever `node_modules` does not match `package-lock.json`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import httpx
import pytest

from fieldsync.kit.settings import Settings
from tests.sync.conftest import (  # noqa: F401 - fixtures, re-exported for these tests
    Account,
    CreateUser,
    Register,
    create_user,
    endpoints,
    live_url,
    register,
    runtime,
)

CLIENTS_DIR = Path(__file__).parent
LOCK_FILE = CLIENTS_DIR / "package-lock.json"
NODE_MODULES = CLIENTS_DIR / "node_modules"
# Written after a successful `npm ci`: the lock file's hash it installed.
STAMP = NODE_MODULES / ".fieldsync-lock-sha256"
MIN_NODE_MAJOR = 20
NPM_CI_TIMEOUT_SECONDS = 600.0
NODE_TIMEOUT_SECONDS = 90.0
INSTALL_HINT = (
    "install Node.js 20 or newer with npm (Debian/Ubuntu: `apt-get install nodejs npm`, "
    "or a release from the Node.js project), then run the tests again"
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "settings(**overrides): run the test's runtime with these settings changed"
    )


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """The production body cap (clients push big batches), changed by a `settings` marker."""
    marker = request.node.get_closest_marker("settings")
    overrides: dict[str, Any] = {"max_body_bytes": 1_048_576}
    if marker is not None:
        overrides.update(marker.kwargs)
    return Settings.model_validate({**settings.model_dump(), **overrides})


def _require_node() -> tuple[str, str]:
    """The paths of node and npm; fails the run with how to install them."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail(f"node and npm are needed for the client tests: {INSTALL_HINT}", pytrace=False)
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    major = int(version.lstrip("v").split(".")[0])
    if major < MIN_NODE_MAJOR:
        pytest.fail(
            f"node {version} is too old for the client tests: {INSTALL_HINT}", pytrace=False
        )
    return node, npm


def _lock_hash() -> str:
    return hashlib.sha256(LOCK_FILE.read_bytes()).hexdigest()


@contextlib.contextmanager
def _install_lock() -> Iterator[None]:
    """One `npm ci` at a time for this checkout (parallel test runs share node_modules)."""
    tag = hashlib.sha256(str(CLIENTS_DIR).encode()).hexdigest()[:12]
    with open(Path(tempfile.gettempdir()) / f"fieldsync-npm-{tag}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def node_executable() -> str:
    """Node, with tests/clients/node_modules installed exactly as package-lock.json says."""
    node, npm = _require_node()
    wanted = _lock_hash()
    with _install_lock():
        if not STAMP.exists() or STAMP.read_text().strip() != wanted:
            installed = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"],
                cwd=CLIENTS_DIR,
                capture_output=True,
                text=True,
                timeout=NPM_CI_TIMEOUT_SECONDS,
            )
            if installed.returncode != 0:
                pytest.fail(
                    f"npm ci in {CLIENTS_DIR} failed ({installed.returncode}):\n"
                    f"{installed.stdout}\n{installed.stderr}",
                    pytrace=False,
                )
            STAMP.write_text(wanted + "\n")
    return node


@dataclass
class ClientEnv:
    """A fresh organization's users and the environment handed to Node programs."""

    base_url: str
    admin: Account
    manager: Account
    technician: Account
    http: httpx.AsyncClient
    env: dict[str, str] = field(default_factory=dict)


@pytest.fixture
async def client_env(
    # First: `npm ci` blocks, and must not stall the live server this starts next.
    node_executable: str,
    live_url: str,  # noqa: F811 - the fixture imported above
    register: Register,  # noqa: F811
    create_user: CreateUser,  # noqa: F811
) -> AsyncIterator[ClientEnv]:
    """An organization with an admin, a manager and a technician, and a client of the
    live server (`http`) for checking its state afterwards."""
    admin = await register()
    manager = await create_user(admin, "manager")
    technician = await create_user(admin, "technician")
    async with httpx.AsyncClient(base_url=live_url, timeout=30) as http:
        yield ClientEnv(
            base_url=live_url,
            admin=admin,
            manager=manager,
            technician=technician,
            http=http,
            env={
                "BASE_URL": live_url,
                "ADMIN_TOKEN": admin.access_token,
                "MANAGER_TOKEN": manager.access_token,
                "TECHNICIAN_TOKEN": technician.access_token,
                "ADMIN_ID": admin.user_id,
                "MANAGER_ID": manager.user_id,
                "TECHNICIAN_ID": technician.user_id,
            },
        )


@dataclass(frozen=True)
class NodeRun:
    """A finished Node program: exit status, output, and its last stdout line as JSON."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def result(self) -> Any:
        """The JSON value the program printed last (None when it printed none)."""
        lines = [line for line in self.stdout.splitlines() if line.strip()]
        if not lines:
            return None
        try:
            return json.loads(lines[-1])
        except json.JSONDecodeError:
            return None


class RunNode(Protocol):
    def __call__(
        self,
        script: str,
        env: Mapping[str, str] | None = ...,
        args: Sequence[str] = ...,
        *,
        check: bool = ...,
        timeout: float = ...,
    ) -> Awaitable[NodeRun]: ...


def _read(output: IO[bytes]) -> str:
    output.seek(0)
    return output.read().decode(errors="replace")


@pytest.fixture
def run_node(node_executable: str) -> RunNode:
    """Run a program under tests/clients with Node, without blocking the live server."""

    async def run(
        script: str,
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
        *,
        check: bool = True,
        timeout: float = NODE_TIMEOUT_SECONDS,
    ) -> NodeRun:
        path = CLIENTS_DIR / script
        assert path.is_file(), f"no such program: {path}"
        # Output goes to files, so a program killed at its deadline still shows it.
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            process = await asyncio.create_subprocess_exec(
                node_executable,
                str(path),
                *args,
                cwd=CLIENTS_DIR,
                env={**os.environ, **(env or {})},
                stdout=out,
                stderr=err,
            )
            try:
                async with asyncio.timeout(timeout):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
                pytest.fail(
                    f"{script} did not finish within {timeout}s:\n--- stdout\n{_read(out)}"
                    f"\n--- stderr\n{_read(err)}",
                    pytrace=False,
                )
            stdout, stderr = _read(out), _read(err)
        finished = NodeRun(
            process.returncode if process.returncode is not None else -1, stdout, stderr
        )
        if check and finished.returncode != 0:
            pytest.fail(
                f"{script} exited {finished.returncode}:\n--- stdout\n{finished.stdout}"
                f"\n--- stderr\n{finished.stderr}",
                pytrace=False,
            )
        return finished

    return run
